"""The metrics' plain data (:mod:`sessions.metrics`): histograms as counts, several
processes added up, a worker's snapshot across the wire; and ``GET /metrics`` made from
them, read back with ``prometheus_client``'s own parser, behind the token or not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.config import Config
from sessions.http import create_app
from sessions.http.routes_metrics import METRIC_NAMES
from sessions.metrics import (
    AVAILABILITY_BUCKETS,
    Buckets,
    IngestCounters,
    ProcessMetrics,
    reject_reason,
)
from sessions.streams import Streams
from storage import Store
from tests.sessions.http.conftest import AUTH, TOKEN, FakeLive


def test_buckets_count_each_observation_once_and_list_cumulatively() -> None:
    buckets = Buckets((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0, 7.0):
        buckets.observe(value)
    assert buckets.counts == [2, 1, 2] and buckets.count == 5
    assert buckets.total == pytest.approx(10.65)
    assert buckets.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 5)]
    assert Buckets.from_dict(buckets.to_dict()) == buckets
    with pytest.raises(ValueError):
        buckets.add(Buckets((0.5,)))


def _process(
    live: int, accepted: int, rejected: dict[str, int], received: dict[str, int]
) -> ProcessMetrics:
    metrics = ProcessMetrics(
        live_sessions=live,
        connections=live + 1,
        pending_writes=2,
        publishes_accepted=accepted,
        publishes_rejected=rejected,
        segments_written=accepted * 3,
        received_bytes=received,
    )
    metrics.availability.observe(0.3)
    return metrics


def test_processes_add_up_and_an_exited_one_leaves_its_counters() -> None:
    one = _process(1, 2, {"unknown_key": 1}, {"cam0": 100, "cam1": 50})
    two = _process(2, 3, {"unknown_key": 2, "throttled": 1}, {"cam1": 25})
    wire = ProcessMetrics.from_dict(two.to_dict())
    assert wire == two
    total = ProcessMetrics.combine([one, wire])
    assert (total.live_sessions, total.connections, total.pending_writes) == (3, 5, 4)
    assert total.publishes_accepted == 5 and total.segments_written == 15
    assert total.publishes_rejected == {"unknown_key": 3, "throttled": 1}
    assert total.received_bytes == {"cam0": 100, "cam1": 75}
    assert total.received_bytes_total == 175
    assert total.availability.count == 2
    left = two.counters_only()
    assert (left.live_sessions, left.connections, left.pending_writes) == (0, 0, 0)
    assert left.publishes_accepted == 3 and left.received_bytes == {"cam1": 25}
    # The original is untouched.
    assert two.live_sessions == 2


def test_refusal_reasons_are_a_bounded_set() -> None:
    counters = IngestCounters()
    counters.publish(True, "")
    counters.publish(False, "unknown stream key")
    counters.publish(False, "stream is already live")
    counters.publish(False, "the callback said: no thanks for user 1234")
    assert counters.publishes_accepted == 1
    assert counters.publishes_rejected == {"unknown_key": 1, "already_live": 1, "other": 1}
    assert reject_reason("too many refused publishes from this address") == "throttled"


async def _client(
    tmp_path: Path, source: Callable[[], ProcessMetrics], public: bool
) -> AsyncIterator[httpx.AsyncClient]:
    store = await Store.open(tmp_path / "ledger.db")
    try:
        app = create_app(
            store=store,
            streams=Streams(store),
            live=FakeLive(),
            config=Config(),
            admin_token=TOKEN,
            is_ready=lambda: True,
            metrics=source,
            metrics_public=public,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await store.close()


def _families(text: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Each family's samples: (sample name, sorted labels) -> value."""
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


async def test_metrics_text_is_what_the_processes_counted(tmp_path: Path) -> None:
    total = ProcessMetrics.combine(
        [
            _process(1, 2, {"unknown_key": 1}, {"cam0": 100}),
            _process(0, 1, {}, {'odd "name"\n': 7}),
        ]
    )
    total.loop_lag.observe(0.002)
    total.store_writes.observe(0.02)
    total.webhook_deliveries = {"delivered": 4, "retried": 2}
    total.webhook_pending = 3
    total.transcode_lagging = 1
    async for client in _client(tmp_path, lambda: total, public=False):
        assert (await client.get("/metrics")).status_code == 401
        response = await client.get("/metrics", headers=AUTH)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        families = _families(response.text)
    names = {
        "rtmp_ingest_publishes": "rtmp_ingest_publishes_total",
        "rtmp_ingest_received_bytes": "rtmp_ingest_received_bytes_total",
    }
    for exported in METRIC_NAMES:
        assert exported.removesuffix("_total") in families, exported
    publishes = families["rtmp_ingest_publishes"]
    assert (
        publishes[(names["rtmp_ingest_publishes"], (("reason", ""), ("result", "accepted")))] == 3
    )
    key = (names["rtmp_ingest_publishes"], (("reason", "unknown_key"), ("result", "rejected")))
    assert publishes[key] == 1
    assert families["rtmp_ingest_live_sessions"][("rtmp_ingest_live_sessions", ())] == 1
    assert families["rtmp_ingest_received_bytes"][(names["rtmp_ingest_received_bytes"], ())] == 107
    per_stream = families["rtmp_ingest_stream_received_bytes"]
    assert per_stream[("rtmp_ingest_stream_received_bytes_total", (("stream", "cam0"),))] == 100
    assert (
        per_stream[("rtmp_ingest_stream_received_bytes_total", (("stream", 'odd "name"\n'),))] == 7
    )
    availability = families["rtmp_ingest_segment_availability_seconds"]
    assert availability[("rtmp_ingest_segment_availability_seconds_count", ())] == 2
    inf = ("rtmp_ingest_segment_availability_seconds_bucket", (("le", "+Inf"),))
    assert availability[inf] == 2
    below = ("rtmp_ingest_segment_availability_seconds_bucket", (("le", "0.25"),))
    assert availability[below] == 0 and 0.25 in AVAILABILITY_BUCKETS
    hooks = families["rtmp_ingest_webhook_deliveries"]
    assert {labels[0][1]: v for (_, labels), v in hooks.items()} == {
        "delivered": 4,
        "retried": 2,
        "failed": 0,
    }
    pending = families["rtmp_ingest_webhook_pending_deliveries"]
    assert pending[("rtmp_ingest_webhook_pending_deliveries", ())] == 3
    lagging = families["rtmp_ingest_transcode_lagging_sessions"]
    assert lagging[("rtmp_ingest_transcode_lagging_sessions", ())] == 1
    lag = families["rtmp_ingest_event_loop_lag_seconds"]
    assert lag[("rtmp_ingest_event_loop_lag_seconds_sum", ())] == pytest.approx(0.002)


async def test_metrics_public_needs_no_token_and_nothing_else_opens(tmp_path: Path) -> None:
    async for client in _client(tmp_path, ProcessMetrics, public=True):
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "rtmp_ingest_live_sessions 0.0" in response.text
        assert (await client.get("/api/status")).status_code == 401
        assert (await client.get("/metrics/")).status_code == 401
