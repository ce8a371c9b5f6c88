"""The reconnect window with a real encoder: the ``ffmpeg`` command line publishing in
real time, killed outright (SIGKILL: the kernel closes its socket, no unpublish) and
started again. One session, its live playlist continued, one recording."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from bench.media import make_flv
from storage.models import SessionRecord
from tests.sessions.hls.media import parse_playlist
from tests.support.media import start_ffmpeg
from tests.support.stack import Stack, start_stack

pytestmark = pytest.mark.slow

#: Seconds the encoder is gone before it comes back.
PAUSE = 1.5


async def _open(stack: Stack, stream_id: str, status: str, timeout: float = 20) -> SessionRecord:
    async with asyncio.timeout(timeout):
        while True:
            record = stack.owner.live_session(stream_id)
            if record is not None and record.status == status:
                return record
            await asyncio.sleep(0.02)


async def _ended(stack: Stack, count: int, timeout: float = 30) -> list[SessionRecord]:
    async with asyncio.timeout(timeout):
        while True:
            rows, _ = await stack.store.list_sessions(limit=100)
            if len([r for r in rows if r.status == "ended"]) >= count:
                return sorted(rows, key=lambda r: r.created_at)
            await asyncio.sleep(0.05)


async def _recorded(stack: Stack, session_id: str) -> SessionRecord:
    async with asyncio.timeout(30):
        while True:
            record = await stack.store.get_session(session_id)
            if record is not None and record.recording_status in ("ready", "failed"):
                return record
            await asyncio.sleep(0.1)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()


class Watcher:
    """Reads the live playlist every 50 ms while the test runs: what viewers saw."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: (media sequence, discontinuity sequence, [(uri, discontinuity before it)],
        #: ended) per read that changed.
        self.seen: list[tuple[int, int, list[tuple[str, bool]], bool]] = []
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(FileNotFoundError, AssertionError, ValueError):
                playlist = parse_playlist(self.path)
                sequence = int(playlist.tags["#EXT-X-MEDIA-SEQUENCE"])
                discontinuity = int(playlist.tags.get("#EXT-X-DISCONTINUITY-SEQUENCE", "0"))
                segments = [
                    (uri, index in playlist.discontinuities)
                    for index, (_, uri) in enumerate(playlist.segments)
                ]
                read = (sequence, discontinuity, segments, playlist.endlist)
                if not self.seen or self.seen[-1] != read:
                    self.seen.append(read)
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _probe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries", "format=duration", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout)["format"]["duration"])


async def test_an_encoder_killed_and_restarted_within_the_window_makes_one_session(
    tmp_path: Path,
) -> None:
    stack = await start_stack(tmp_path, hls=True, reconnect_window=8.0)
    watcher: Watcher | None = None
    try:
        stream, key = await stack.streams.create("cam", record=True)
        clip = make_flv(tmp_path / "clip.flv", seconds=12)
        short = make_flv(tmp_path / "short.flv", seconds=4)
        first = await start_ffmpeg(clip, stack.url(key), realtime=True)
        try:
            live = await _open(stack, stream.id, "live")
            folder = stack.media_root / stream.playback_id / live.id
            watcher = Watcher(folder / "index.m3u8")
            await asyncio.sleep(4.5)
        finally:
            await _kill(first)
        waiting = await _open(stack, stream.id, "reconnecting")
        assert waiting.id == live.id
        await asyncio.sleep(0.5)  # the part's last segment is listed by now
        parked = parse_playlist(folder / "index.m3u8")
        assert not parked.endlist, "a reconnecting session's playlist stays open"
        await asyncio.sleep(PAUSE - 0.5)
        second = await start_ffmpeg(short, stack.url(key), realtime=True)
        try:
            resumed = await _open(stack, stream.id, "live")
            assert resumed.id == live.id
            assert await asyncio.wait_for(second.wait(), 30) == 0  # it unpublishes at the end
        finally:
            await _kill(second)
        (session,) = await _ended(stack, 1)
        await asyncio.sleep(0.3)
        await watcher.stop()
        recorded = await _recorded(stack, session.id)
    finally:
        if watcher is not None:
            await watcher.stop()
        await stack.close()

    # One session, continued once, ended by the second encoder's own stop.
    assert session.id == live.id and session.end_reason == "unpublished"
    assert session.reconnects == 1 and len(session.gaps) == 1
    gap = session.gaps[0]
    assert PAUSE - 0.3 <= gap["seconds"] <= PAUSE + 2.0, gap
    assert session.gap_seconds == pytest.approx(gap["seconds"], abs=1e-3)
    # duration: first to last packet, the gap included; ingest_seconds: the parts alone,
    # which with real-time encoders is about their media.
    assert session.duration == pytest.approx(session.last_seen - session.created_at, abs=1e-3)
    assert session.duration == pytest.approx(session.ingest_seconds + session.gap_seconds, abs=0.01)
    assert session.ingest_seconds == pytest.approx(session.media_duration, abs=0.75)
    assert session.media_duration > 4.0 + 3.0

    # The live playlist, as players read it: the media sequence never went back, each
    # segment kept its number, and one discontinuity came before the second part.
    sequences = [read[0] for read in watcher.seen]
    assert sequences == sorted(sequences)
    numbers: dict[str, int] = {}
    for sequence, _, segments, _ in watcher.seen:
        for offset, (uri, _) in enumerate(segments):
            assert numbers.setdefault(uri, sequence + offset) == sequence + offset, uri
    after_gap = {uri for read in watcher.seen for uri, jump in read[2] if jump}
    assert len(after_gap) == 1
    assert not any(read[3] for read in watcher.seen[:-1]) and watcher.seen[-1][3]

    # The recording: every segment of both parts with the discontinuity, one MP4 of them
    # back to back (no padding for the gap).
    assert recorded.recording_status == "ready"
    vod = parse_playlist(folder / "vod.m3u8")
    assert vod.endlist and len(vod.discontinuities) == 1
    assert [uri for _, uri in vod.segments] == sorted(numbers, key=numbers.__getitem__)
    parts = sum(duration for duration, _ in vod.segments)
    assert abs(_probe_duration(folder / "recording.mp4") - parts) < 0.2
    assert [p.name for p in folder.glob("*.mp4") if p.name.startswith("recording")] == [
        "recording.mp4"
    ]


async def test_an_encoder_back_after_the_window_makes_a_new_session(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, hls=True, reconnect_window=1.0)
    try:
        stream, key = await stack.streams.create("cam")
        clip = make_flv(tmp_path / "clip.flv", seconds=10)
        first = await start_ffmpeg(clip, stack.url(key), realtime=True)
        try:
            one = await _open(stack, stream.id, "live")
            await asyncio.sleep(2.0)
        finally:
            await _kill(first)
        waiting = await _open(stack, stream.id, "reconnecting")
        (ended,) = await _ended(stack, 1)
        # Closed as any ended session's (before its media expires).
        first_playlist = parse_playlist(
            stack.media_root / stream.playback_id / one.id / "index.m3u8"
        )
        second = await start_ffmpeg(clip, stack.url(key), realtime=True)
        try:
            two = await _open(stack, stream.id, "live")
        finally:
            await _kill(second)
        sessions = await _ended(stack, 2)
    finally:
        await stack.close()
    assert two.id != one.id and [s.id for s in sessions] == [one.id, two.id]
    assert ended.id == one.id and ended.end_reason == "disconnected"
    assert ended.ended_at == pytest.approx(waiting.last_seen, abs=1e-3)
    assert ended.reconnects == 0 and ended.gaps == []
    assert first_playlist.endlist and first_playlist.discontinuities == []


async def test_an_explicit_unpublish_then_a_quick_republish_makes_two_sessions(
    tmp_path: Path,
) -> None:
    stack = await start_stack(tmp_path, hls=True, reconnect_window=30.0)
    try:
        _, key = await stack.streams.create("cam")
        clip = make_flv(tmp_path / "clip.flv", seconds=2)
        for _ in range(2):
            proc = await start_ffmpeg(clip, stack.url(key), realtime=True)
            assert await asyncio.wait_for(proc.wait(), 30) == 0  # FCUnpublish, deleteStream
        one, two = await _ended(stack, 2)
    finally:
        await stack.close()
    assert one.id != two.id
    assert one.end_reason == two.end_reason == "unpublished"
    assert one.reconnects == two.reconnects == 0
