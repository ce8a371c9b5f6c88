"""A session continued by its publisher's reconnect: what the new publish carries on.

When a publisher comes back within ``[sessions] reconnect_window`` (see
:mod:`sessions.owner`), its publish continues the session's record instead of opening a
new one: same id and ``created_at``, one more ``reconnects``, a gap from the last packet
before to the first packet after, and the counters of the parts before it carried on
(:class:`Carried`): the new publish counts its own part from zero and adds it to them.

* ``duration`` stays first to last media packet, gaps included; ``ingest_seconds`` is
  ``duration`` less ``gap_seconds``;
* ``bytes_received``, ``media_bytes``, ``media_duration`` (the span of each part's media
  timestamps, summed) and each track's ``bytes``, ``frames`` and ``keyframes`` add up
  across the parts; a track's codec facts, ``fps`` and ``bitrate`` are those of the
  latest part that had it;
* ``issues`` keep the earlier parts' (closed at their part's last packet: ``ended_at``)
  and add the new part's; ``is_healthy`` is the new part's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.models import SessionRecord

#: Per-track counters that add up across the parts of a session.
_SUMMED = ("bytes", "frames", "keyframes")


@dataclass(slots=True)
class Carried:
    """The counters of a session's parts before this publish's (zero for a new one)."""

    bytes_received: int = 0
    media_bytes: int = 0
    media_duration: float = 0.0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, record: SessionRecord) -> Carried:
        return cls(
            bytes_received=record.bytes_received,
            media_bytes=record.media_bytes,
            media_duration=record.media_duration,
            tracks=[dict(track) for track in record.tracks],
            issues=[_closed(issue, record.last_seen) for issue in record.issues],
        )

    def tracks_with(self, part: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The session's tracks: this part's, with the earlier parts' counters added
        (a track only an earlier part had is kept as it was)."""
        if not self.tracks:
            return part
        earlier = {(t.get("kind"), t.get("track_id")): t for t in self.tracks}
        merged: list[dict[str, Any]] = []
        for track in part:
            before = earlier.pop((track.get("kind"), track.get("track_id")), None)
            if before is not None:
                track = dict(track)
                for name in _SUMMED:
                    track[name] = int(before.get(name) or 0) + int(track.get(name) or 0)
            merged.append(track)
        merged.extend(earlier.values())
        return merged


def resume_record(record: SessionRecord, now: float, remote_addr: str, encoder: str | None) -> None:
    """``record`` continues with a publish whose first media message arrived at ``now``:
    live again, one more reconnect, the gap since its last packet."""
    gap = round(max(0.0, now - record.last_seen), 3)
    record.gaps = [*record.gaps, {"from": record.last_seen, "to": now, "seconds": gap}]
    record.gap_seconds = round(record.gap_seconds + gap, 3)
    record.reconnects += 1
    record.status = "live"
    record.remote_addr = remote_addr
    if encoder:
        record.encoder = encoder
    record.last_seen = record.updated_at = now


def _closed(issue: dict[str, Any], at: float) -> dict[str, Any]:
    """A copy of ``issue``, closed at ``at`` if it was still open (its part is over)."""
    copy = dict(issue)
    if copy.get("ended_at") is None:
        copy["ended_at"] = at
    return copy
