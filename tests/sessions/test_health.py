"""SessionHealth: the live issues, evaluated on a fake clock from a real MediaAccount fed
literal FLV messages (no sockets, no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.rtmp.events import MediaReceived
from sessions.accounting import MediaAccount
from sessions.health import (
    MAX_PER_CODE,
    HealthRules,
    SessionHealth,
    health_summary,
    is_open,
    merge_issues,
)

START = 1_800_000_000.0


def _video(ts: int, size: int, key: bool) -> MediaReceived:
    head = b"\x17" if key else b"\x27"
    return MediaReceived(1, 9, ts, head + b"\x01\x00\x00\x00" + bytes(size))


def _audio(ts: int) -> MediaReceived:
    return MediaReceived(1, 8, ts, b"\xaf\x01" + bytes(40))


class Publisher:
    """Sends a second of media per step of the fake clock (or ``pace`` seconds of media
    time per wall second), then ticks the evaluator, as the manager does."""

    def __init__(self, rules: HealthRules | None = None) -> None:
        self.account = MediaAccount()
        self.health = SessionHealth(rules)
        self.now = START
        self.media_ms = 0.0
        self.next_video = 0.0
        self.next_audio = 0.0
        self.ts_base = 0
        self.frame = 0
        self.last_key = -1e9
        self.changes: list[float] = []

    def run(
        self,
        seconds: int,
        *,
        fps: float = 25,
        frame_bytes: int = 2000,
        gop: float = 2.0,
        video: bool = True,
        audio: bool = True,
        pace: float = 1.0,
    ) -> None:
        for _ in range(seconds):
            end = self.media_ms + pace * 1000
            while self.next_video < end:
                key = self.next_video - self.last_key >= gop * 1000 - 1
                if video:
                    ts = self.ts_base + int(self.next_video)
                    self.account.add(_video(ts, frame_bytes, key))
                    if key:
                        self.last_key = self.next_video
                self.next_video += 1000 / fps
            while self.next_audio < end:
                if audio:
                    self.account.add(_audio(self.ts_base + int(self.next_audio)))
                self.next_audio += 20
            self.media_ms = end
            self.now += 1.0
            if self.health.tick(self.now, self.account):
                self.changes.append(self.now - START)

    def issues(self, code: str) -> list[dict[str, Any]]:
        return [issue for issue in self.health.issues if issue["code"] == code]

    @property
    def open(self) -> set[str]:
        return set(self.health.open_codes)


def test_a_steady_publish_stays_healthy() -> None:
    publisher = Publisher()
    publisher.run(120)
    assert publisher.health.issues == [] and publisher.changes == []


def test_video_that_stops_is_no_video_until_it_comes_back() -> None:
    publisher = Publisher()
    publisher.run(20)
    publisher.run(4, video=False)
    assert "no_video" not in publisher.open
    publisher.run(2, video=False)
    assert "no_video" in publisher.open and "no_audio" not in publisher.open
    assert "fps_drop" not in publisher.open  # the stopped track is no_video's
    publisher.run(3)
    (issue,) = publisher.issues("no_video")
    assert issue["started_at"] == issue["at"] == START + 25
    assert issue["ended_at"] == START + 27
    assert not is_open(issue) and "no_video" not in publisher.open


def test_audio_that_stops_is_no_audio() -> None:
    publisher = Publisher()
    publisher.run(15)
    publisher.run(8, audio=False)
    assert publisher.open == {"no_audio"}


def test_a_track_never_sent_is_not_missing() -> None:
    publisher = Publisher()
    publisher.run(30, audio=False)
    assert publisher.health.issues == []


def test_bitrate_drop_opens_after_the_window_and_closes_when_back() -> None:
    publisher = Publisher()
    publisher.run(30)
    publisher.run(2, frame_bytes=400)
    assert "bitrate_drop" not in publisher.open
    publisher.run(4, frame_bytes=400)
    assert publisher.open == {"bitrate_drop"}  # same frame rate: not fps_drop
    (issue,) = publisher.issues("bitrate_drop")
    assert "of its 30 s average" in issue["message"]
    publisher.run(6)
    assert publisher.open == set() and issue["ended_at"] is not None


def test_a_low_rate_that_lasts_becomes_the_new_average() -> None:
    publisher = Publisher()
    publisher.run(30)
    publisher.run(60, frame_bytes=400)
    (issue,) = publisher.issues("bitrate_drop")
    assert issue["ended_at"] is not None and issue["ended_at"] - issue["started_at"] < 35


def test_keyframes_make_no_bitrate_drop() -> None:
    # Big keyframes every 10 s, small frames between: each 5 s window stays near the average.
    publisher = Publisher()
    for _ in range(10):
        publisher.account.add(_video(int(publisher.next_video), 60_000, True))
        publisher.next_video += 40
        publisher.run(10, frame_bytes=300, gop=1000)
    assert "bitrate_drop" not in {issue["code"] for issue in publisher.health.issues}


def test_fps_drop_with_the_same_bitrate() -> None:
    publisher = Publisher()
    publisher.run(30, fps=30, frame_bytes=1000)
    publisher.run(7, fps=10, frame_bytes=3000)
    assert publisher.open == {"fps_drop"}
    publisher.run(7, fps=30, frame_bytes=1000)
    assert publisher.open == set()


def test_no_rate_judged_before_enough_history() -> None:
    publisher = Publisher()
    publisher.run(3)
    publisher.run(8, frame_bytes=100, fps=5)
    assert {issue["code"] for issue in publisher.health.issues} <= {"keyframe_interval"}
    assert "bitrate_drop" not in publisher.open and "fps_drop" not in publisher.open


def test_a_publisher_slower_than_real_time_drifts() -> None:
    publisher = Publisher()
    publisher.run(10)
    publisher.run(4, pace=0.5)
    assert "ingest_drift" not in publisher.open  # 2 s behind: not more yet
    publisher.run(2, pace=0.5)
    assert "ingest_drift" in publisher.open
    (issue,) = publisher.issues("ingest_drift")
    assert "behind the wall clock" in issue["message"]
    publisher.run(4, pace=1.5)  # catches up 2 s: back under 1 s behind
    assert "ingest_drift" not in publisher.open


def test_a_burst_ahead_then_real_time_is_no_drift() -> None:
    publisher = Publisher()
    publisher.run(3, pace=4.0)  # a buffered start: 12 s of media in 3 s
    publisher.run(60)
    assert publisher.health.issues == []


def test_a_timestamp_reset_is_no_drift() -> None:
    publisher = Publisher()
    publisher.run(20)
    publisher.ts_base = -int(publisher.media_ms)  # the encoder starts again from 0
    publisher.run(20)
    assert "ingest_drift" not in {issue["code"] for issue in publisher.health.issues}


def test_sparse_keyframes_open_keyframe_interval_until_they_come_back() -> None:
    publisher = Publisher()
    publisher.run(12, gop=12)
    assert "keyframe_interval" in publisher.open
    (issue,) = publisher.issues("keyframe_interval")
    assert issue["started_at"] == START + 11  # the first tick with over 10 s of video
    publisher.run(14, gop=12)
    assert "keyframe_interval" in publisher.open  # a 12 s gap does not close it
    publisher.run(4, gop=2)
    assert "keyframe_interval" not in publisher.open


def test_keyframe_interval_follows_the_rule() -> None:
    publisher = Publisher(HealthRules(keyframe_interval=3.0))
    publisher.run(20, gop=4)
    assert "keyframe_interval" in publisher.open
    steady = Publisher(HealthRules(keyframe_interval=3.0))
    steady.run(20, gop=3)
    assert steady.health.issues == []


def test_a_flapping_issue_keeps_a_bounded_history() -> None:
    publisher = Publisher()
    publisher.run(1)
    for _ in range(MAX_PER_CODE + 5):
        publisher.run(6, audio=False)
        publisher.run(1)
    entries = publisher.issues("no_audio")
    assert len(entries) == MAX_PER_CODE
    assert all(not is_open(issue) for issue in entries)
    assert entries[-1]["started_at"] > entries[0]["started_at"]


def test_changes_are_reported_once() -> None:
    publisher = Publisher()
    publisher.run(15)
    publisher.run(10, audio=False)
    publisher.run(5)
    # Opened once, closed once.
    assert publisher.changes == [pytest.approx(20), pytest.approx(26)]


def test_merge_and_summary_keep_older_entries() -> None:
    old = {"code": "segment_write_failed", "message": "disk full", "at": START + 5}
    closed = {
        "code": "no_audio",
        "message": "m",
        "at": START + 1,
        "started_at": START + 1,
        "ended_at": START + 3,
    }
    merged = merge_issues([old], [closed])
    assert [issue["code"] for issue in merged] == ["no_audio", "segment_write_failed"]
    assert is_open(old) and not is_open(closed)
    assert health_summary(merged) == "unhealthy: segment_write_failed"
    assert health_summary([closed]) == "healthy"
