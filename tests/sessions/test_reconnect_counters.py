"""What a continued session carries over from its earlier parts (sessions.reconnect)."""

from __future__ import annotations

from sessions.reconnect import Carried, resume_record
from storage.models import SessionRecord


def _record() -> SessionRecord:
    record = SessionRecord("a", "s", "cam", 100.0, 160.0, 160.0, status="reconnecting")
    record.bytes_received, record.media_bytes, record.media_duration = 5000, 4000, 59.5
    record.tracks = [
        {"kind": "video", "track_id": 0, "codec": "h264", "bytes": 3000, "frames": 90,
         "keyframes": 3, "fps": 30.0},
        {"kind": "audio", "track_id": 0, "codec": "aac", "bytes": 1000, "frames": 140,
         "keyframes": 0},
    ]  # fmt: skip
    record.issues = [
        {"code": "no_audio", "message": "m", "at": 150.0, "started_at": 150.0, "ended_at": None},
        {"code": "fps_drop", "message": "m", "at": 120.0, "started_at": 120.0, "ended_at": 125.0},
        {"code": "unsupported_codec", "message": "m", "at": 101.0},
    ]
    return record


def test_the_earlier_parts_counters_add_to_the_new_parts() -> None:
    carried = Carried.of(_record())
    part = [
        {"kind": "video", "track_id": 0, "codec": "h264", "bytes": 600, "frames": 30,
         "keyframes": 1, "fps": 25.0, "width": 640},
    ]  # fmt: skip
    video, audio = carried.tracks_with(part)
    assert (video["bytes"], video["frames"], video["keyframes"]) == (3600, 120, 4)
    # Facts and rates are the latest part's; a track only an earlier part had stays.
    assert (video["fps"], video["width"]) == (25.0, 640)
    assert audio["frames"] == 140 and audio["bytes"] == 1000
    assert part[0]["bytes"] == 600  # the part's own list is left as it was
    assert Carried().tracks_with(part) is part


def test_the_earlier_parts_issues_are_closed_at_their_last_packet() -> None:
    carried = Carried.of(_record())
    assert [issue["ended_at"] for issue in carried.issues] == [160.0, 125.0, 160.0]


def test_resuming_adds_the_gap_and_a_reconnect() -> None:
    record = _record()
    resume_record(record, 163.5, "10.0.0.9:4000", "obs")
    assert record.status == "live" and record.reconnects == 1
    assert record.gaps == [{"from": 160.0, "to": 163.5, "seconds": 3.5}]
    assert (record.gap_seconds, record.remote_addr, record.encoder) == (3.5, "10.0.0.9:4000", "obs")
    assert record.last_seen == 163.5
    resume_record(record, 170.0, "10.0.0.9:4001", None)
    assert record.reconnects == 2 and record.gap_seconds == 10.0 and record.encoder == "obs"
