"""What one process counts for ``GET /metrics``, as plain data that crosses processes.

Each process keeps its counters and histograms here (:class:`IngestCounters`, fed by the
session manager and the store's write queue, and the shell's loop-lag ticker); a
:class:`ProcessMetrics` is a snapshot of them with the gauges of the moment. With worker
processes each worker sends its snapshot to the main process with its stats, and the main
process adds them up (:meth:`ProcessMetrics.combine`), keeping what workers that exited
had counted, so that counters never go back. The Prometheus text is made from the sum by
:mod:`sessions.http.routes_metrics`.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AVAILABILITY_BUCKETS",
    "LOOP_LAG_BUCKETS",
    "STORE_WRITE_BUCKETS",
    "Buckets",
    "IngestCounters",
    "ProcessMetrics",
    "reject_reason",
]

#: Upper bounds (seconds) of the histograms' buckets.
AVAILABILITY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
STORE_WRITE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

#: Why a publish was refused, as the label of ``rtmp_ingest_publishes_total`` (a bounded
#: set: anything else is ``other``).
_REASONS = {
    "unknown stream key": "unknown_key",
    "stream is disabled": "disabled",
    "too many refused publishes from this address": "throttled",
    "stream is already live": "already_live",
    "authorization failed": "error",
}


def reject_reason(reason: str) -> str:
    """The label of a refusal's reason."""
    return _REASONS.get(reason, "other")


@dataclass(slots=True)
class Buckets:
    """A histogram as counts: observations at or under each bound (not cumulative here),
    then those above the last; their sum and count."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def copy(self) -> Buckets:
        return Buckets(self.bounds, list(self.counts), self.total, self.count)

    def add(self, other: Buckets) -> None:
        """Add ``other``'s observations (its bounds must be these)."""
        if other.bounds != self.bounds:
            raise ValueError("histograms with different buckets")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.count += other.count

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus lists them, ``+Inf`` last."""
        pairs, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs

    def to_dict(self) -> dict[str, Any]:
        return {
            "bounds": list(self.bounds),
            "counts": list(self.counts),
            "total": self.total,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Buckets:
        return cls(
            tuple(float(b) for b in data["bounds"]),
            [int(c) for c in data["counts"]],
            float(data["total"]),
            int(data["count"]),
        )


class IngestCounters:
    """The counters one process keeps while it runs (they only grow)."""

    def __init__(self) -> None:
        self.publishes_accepted = 0
        #: Refused publishes by :func:`reject_reason`.
        self.publishes_rejected: dict[str, int] = {}
        self.segments_written = 0
        #: Bytes read from publishers of sessions that ended, by stream name.
        self.ended_bytes: dict[str, int] = {}
        #: Seconds from a segment's last packet to its listing.
        self.availability = Buckets(AVAILABILITY_BUCKETS)

    def publish(self, allowed: bool, reason: str) -> None:
        if allowed:
            self.publishes_accepted += 1
        else:
            label = reject_reason(reason)
            self.publishes_rejected[label] = self.publishes_rejected.get(label, 0) + 1

    def session_ended(self, stream: str, received: int) -> None:
        self.ended_bytes[stream] = self.ended_bytes.get(stream, 0) + received


@dataclass(slots=True)
class ProcessMetrics:
    """One process's metrics at one moment (or several processes' added up)."""

    #: Gauges: sessions live, RTMP connections open, writes queued for the store.
    live_sessions: int = 0
    connections: int = 0
    pending_writes: int = 0
    #: Counters.
    publishes_accepted: int = 0
    publishes_rejected: dict[str, int] = field(default_factory=dict)
    segments_written: int = 0
    #: Gauge: live sessions whose renditions are behind real time (``transcode_realtime``
    #: open).
    transcode_lagging: int = 0
    dropped_writes: int = 0
    #: Bytes read from publishers (live sessions' so far included), by stream name.
    received_bytes: dict[str, int] = field(default_factory=dict)
    #: Webhook delivery attempts by result (delivered, retried, failed), and the
    #: deliveries waiting (a gauge): the main process's dispatcher's.
    webhook_deliveries: dict[str, int] = field(default_factory=dict)
    webhook_pending: int = 0
    availability: Buckets = field(default_factory=lambda: Buckets(AVAILABILITY_BUCKETS))
    loop_lag: Buckets = field(default_factory=lambda: Buckets(LOOP_LAG_BUCKETS))
    store_writes: Buckets = field(default_factory=lambda: Buckets(STORE_WRITE_BUCKETS))

    @property
    def received_bytes_total(self) -> int:
        return sum(self.received_bytes.values())

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            data[item.name] = value.to_dict() if isinstance(value, Buckets) else value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessMetrics:
        fields: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if item.name not in data:
                continue
            value = data[item.name]
            fields[item.name] = (
                Buckets.from_dict(value)
                if isinstance(value, dict) and ("bounds" in value)
                else value
            )
        return cls(**fields)

    def counters_only(self) -> ProcessMetrics:
        """These counts without the gauges (what a process that exited leaves behind)."""
        kept = ProcessMetrics.combine([self])
        kept.live_sessions = kept.connections = kept.pending_writes = 0
        kept.transcode_lagging = kept.webhook_pending = 0
        return kept

    @classmethod
    def combine(cls, parts: list[ProcessMetrics]) -> ProcessMetrics:
        """Several processes' metrics as one: every figure added up."""
        total = cls()
        for part in parts:
            total.live_sessions += part.live_sessions
            total.connections += part.connections
            total.pending_writes += part.pending_writes
            total.publishes_accepted += part.publishes_accepted
            total.segments_written += part.segments_written
            total.transcode_lagging += part.transcode_lagging
            total.webhook_pending += part.webhook_pending
            _add_to(total.webhook_deliveries, part.webhook_deliveries)
            total.dropped_writes += part.dropped_writes
            _add_to(total.publishes_rejected, part.publishes_rejected)
            _add_to(total.received_bytes, part.received_bytes)
            total.availability.add(part.availability)
            total.loop_lag.add(part.loop_lag)
            total.store_writes.add(part.store_writes)
        return total


def _add_to(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value
