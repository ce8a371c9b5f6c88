"""Renditions in transcoder processes: the bounded queue, and a process that dies."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.media import FlvTag
from ingest.profiles import Profile
from sessions.hls import Segmenter, SegmentInfo
from sessions.transcode import Renditions, RenditionsTarget, SourceInfo
from sessions.transcode.pool import TranscodePool, TranscodeSettings
from sessions.transcode.tap import RenditionsTap

from .media import arrival, playlist_segments

PROFILE = Profile("low", 160, 120, 150_000)
#: A guard against hanging, not a bound on how long anything may take.
DEADLINE = 120.0


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def pool() -> Iterator[TranscodePool]:
    # Arrival times are the clip's own (2023): lag is never measured against them here.
    pool = TranscodePool(TranscodeSettings(encoder="libx264", max_lag=1e12))
    yield pool
    pool.close()


def _segmenter(folder: Path, renditions: Renditions) -> Segmenter:
    return Segmenter(folder, window=100, keep_all=True, tap=RenditionsTap(renditions))


def _feed(segmenter: Segmenter, tags: list[FlvTag]) -> list[SegmentInfo]:
    done: list[SegmentInfo] = []
    for tag in tags:
        if tag.tag_type in (8, 9):
            done += segmenter.add(tag.tag_type, tag.timestamp, tag.body, arrival(tag))
    return done


@pytest.mark.slow
def test_a_killed_transcoder_ends_only_its_renditions(
    pool: TranscodePool, transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    tags = transcode_clips["small"]
    renditions = pool.start(RenditionsTarget("s-1", tmp_path / "a"), [PROFILE], SourceInfo(fps=30))
    segmenter = _segmenter(tmp_path / "a", renditions)
    half = len(tags) // 2
    done = _feed(segmenter, tags[:half])
    wait_for(lambda: renditions.report().profiles[0].segments >= 1)  # mid-stream
    (process,) = pool.processes
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    wait_for(lambda: renditions.report().failed)

    # The source goes on, unaffected: every segment, as without renditions.
    done += _feed(segmenter, tags[half:])
    done += segmenter.finish()
    assert [s.sequence for s in done] == [0, 1, 2]
    report = renditions.finish().result(timeout=DEADLINE)
    assert report.failed and report.profiles[0].state == "failed"
    assert report.profiles[0].segments >= 1
    assert [i["code"] for i in report.issues] == ["transcode_failed"]
    assert "killed (signal 9)" in report.issues[0]["message"]
    # Its playlists are ended, its half-written segment gone; what it made stays.
    folder = tmp_path / "a" / "low"
    assert (folder / "index.m3u8").read_text().endswith("#EXT-X-ENDLIST\n")
    assert not list(folder.glob("*.tmp"))
    assert len(playlist_segments(folder, "index.m3u8")) == report.profiles[0].segments

    # The next session gets a new process and its renditions whole.
    other = pool.start(RenditionsTarget("s-2", tmp_path / "b"), [PROFILE], SourceInfo(fps=30))
    segmenter = _segmenter(tmp_path / "b", other)
    source = _feed(segmenter, tags) + segmenter.finish()
    final = other.finish().result(timeout=DEADLINE)
    assert not final.failed and final.issues == []
    assert final.profiles[0].state == "ended"
    assert final.profiles[0].segments == len(source) == 3
    taken = other.take_segments()
    assert [(s.profile, s.info.uri) for s in taken] == [
        ("low", uri) for _, uri in playlist_segments(tmp_path / "b" / "low", "index.m3u8")
    ]
    assert [p.pid for p in pool.processes] != [process.pid]


def test_a_full_queue_drops_frames_to_the_next_keyframe(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """The process is stopped (SIGSTOP) while the session feeds it: past the queue's bound
    nothing more is queued, frames are dropped, and the renditions say they lag; once the
    process runs again they resume at a keyframe, the dropped frames counted."""
    pool = TranscodePool(
        TranscodeSettings(encoder="libx264", max_lag=1e12, max_queued_bytes=10_000)
    )
    try:
        tags = transcode_clips["small"]
        renditions = pool.start(RenditionsTarget("s-1", tmp_path), [PROFILE], SourceInfo(fps=30))
        (process,) = pool.processes
        assert process.pid is not None
        os.kill(process.pid, signal.SIGSTOP)
        try:
            segmenter = _segmenter(tmp_path, renditions)
            cut = len(tags) * 2 // 3
            _feed(segmenter, tags[:cut])
            assert renditions.report().lagging
        finally:
            os.kill(process.pid, signal.SIGCONT)
        _feed(segmenter, tags[cut:])
        segmenter.finish()
        report = renditions.finish().result(timeout=DEADLINE)
    finally:
        pool.close()
    (counted,) = report.profiles
    assert counted.dropped_frames > 0 and counted.frames > 0
    assert [i["code"] for i in report.issues] == ["transcode_realtime"]
    assert counted.state == "ended" and not report.failed
