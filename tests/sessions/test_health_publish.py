"""Each live health issue provoked by a real publisher over RTMP (PyAV's FLV muxer, paced;
the ``ffmpeg`` command line at real time for the healthy baseline), watched in the ledger
as the server flushes it, and its ``stream_health`` events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.media import make_flv
from storage.models import SessionRecord
from tests.support.events import events
from tests.support.media import start_ffmpeg
from tests.support.paced import start_paced
from tests.support.stack import Stack, start_stack

pytestmark = pytest.mark.slow

#: Noisy 320x240 video at 30 fps, ~300 kb/s: a steady rate, as camera content gives.
FPS = 30


def _clip(tmp_path: Path, seconds: float, *, gop: int = FPS) -> Path:
    return make_flv(
        tmp_path / f"clip-{seconds}-{gop}.flv",
        seconds=seconds,
        fps=FPS,
        gop=gop,
        bitrate=300_000,
    )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    stack = await start_stack(tmp_path)
    try:
        yield stack
    finally:
        await stack.close()


class Watch:
    """Reads the stream's live session from the ledger every 0.2 s; keeps every issue
    code seen open, and the session."""

    def __init__(self, stack: Stack, stream_id: str) -> None:
        self.stack = stack
        self.stream_id = stream_id
        self.seen: set[str] = set()
        self.session_id: str | None = None
        self.samples = 0

    async def until(
        self, proc: asyncio.subprocess.Process, code: str | None, timeout: float
    ) -> None:
        """Watch until ``code`` is seen open (then stop the publisher) or the publisher
        ends; at most ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while proc.returncode is None:
                live = await self.stack.store.active_session(self.stream_id)
                if live is not None:
                    self.session_id = live.id
                    self.samples += 1
                    self.seen |= {i["code"] for i in live.issues if i.get("ended_at") is None}
                    if code is not None and code in self.seen:
                        proc.terminate()
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.2)
            await proc.wait()

    async def final(self) -> SessionRecord:
        assert self.session_id is not None
        async with asyncio.timeout(30):
            while True:
                record = await self.stack.store.get_session(self.session_id)
                if record is not None and record.status == "ended":
                    return record
                await asyncio.sleep(0.2)

    async def health_events(self) -> list[str]:
        found = [e for e in await events(self.stack.store, limit=500) if e.kind == "stream_health"]
        return [str(e.reason) for e in reversed(found) if e.session_id == self.session_id]


async def _provoke(
    stack: Stack, tmp_path: Path, clip: Path, plan: dict[str, Any], code: str
) -> tuple[Watch, SessionRecord]:
    stream, key = await stack.streams.create(f"health-{code}")
    watch = Watch(stack, stream.id)
    proc = await start_paced(clip, stack.url(key), plan)
    await watch.until(proc, code, timeout=90)
    assert code in watch.seen, (code, watch.seen)
    final = await watch.final()
    issue = next(i for i in final.issues if i["code"] == code)
    assert issue["started_at"] >= final.created_at
    assert any(code in reason for reason in await watch.health_events())
    return watch, final


async def test_a_healthy_real_time_publish_stays_healthy(stack: Stack, tmp_path: Path) -> None:
    # 16 s: long enough for every rule, the rate rules' 10 s of history included.
    clip = _clip(tmp_path, 16)
    stream, key = await stack.streams.create("steady")
    watch = Watch(stack, stream.id)
    proc = await start_ffmpeg(clip, stack.url(key), realtime=True)
    await watch.until(proc, None, timeout=90)
    assert proc.returncode == 0 and watch.samples > 20
    final = await watch.final()
    assert watch.seen == set() and final.issues == [] and final.is_healthy
    assert await watch.health_events() == []


async def test_each_issue_is_provoked_by_its_own_publisher(stack: Stack, tmp_path: Path) -> None:
    """Five publishers at once, each on its own stream, each provoking one issue (they
    wait on real time, not on the CPU: together they take as long as the longest)."""
    # A webhook that wants stream.health gets it in the same write as the event-log row.
    await stack.store.create_webhook(
        id="wh-health",
        url="http://127.0.0.1:9/hook",
        events=["stream.health"],
        description="",
        secret="s" * 32,
        now=time.time(),
    )
    clip16, clip24 = _clip(tmp_path, 16), _clip(tmp_path, 24)
    sparse = _clip(tmp_path, 16, gop=12 * FPS)  # one keyframe every 12 s
    await asyncio.gather(
        _video_dropped_midway_is_no_video(stack, tmp_path, clip16),
        _provoke(stack, tmp_path, clip24, {"speeds": [[12, 0.3]]}, "bitrate_drop"),
        _thinned_video_is_fps_drop(stack, tmp_path, clip24),
        _slower_than_real_time_is_ingest_drift(stack, tmp_path, clip16),
        _sparse_keyframes_are_keyframe_interval(stack, tmp_path, sparse),
    )


async def _video_dropped_midway_is_no_video(stack: Stack, tmp_path: Path, clip: Path) -> None:
    watch, final = await _provoke(stack, tmp_path, clip, {"drop_video_from": 5}, "no_video")
    assert "no_audio" not in watch.seen
    assert not final.is_healthy  # still open when the publisher stopped
    deliveries = [
        d for d in (await stack.store.list_deliveries("wh-health"))[0] if d.session_id == final.id
    ]
    assert deliveries and {d.event for d in deliveries} == {"stream.health"}
    assert len(deliveries) == len(await watch.health_events())


async def _thinned_video_is_fps_drop(stack: Stack, tmp_path: Path, clip: Path) -> None:
    watch, _ = await _provoke(
        stack, tmp_path, clip, {"thin_video_from": 12, "keep_one_in": 4}, "fps_drop"
    )
    assert "no_video" not in watch.seen and "ingest_drift" not in watch.seen


async def _slower_than_real_time_is_ingest_drift(stack: Stack, tmp_path: Path, clip: Path) -> None:
    watch, final = await _provoke(stack, tmp_path, clip, {"speeds": [[4, 0.5]]}, "ingest_drift")
    (issue,) = [i for i in final.issues if i["code"] == "ingest_drift"]
    assert "behind the wall clock" in issue["message"]
    assert "no_video" not in watch.seen and "no_audio" not in watch.seen


async def _sparse_keyframes_are_keyframe_interval(stack: Stack, tmp_path: Path, clip: Path) -> None:
    watch, _ = await _provoke(stack, tmp_path, clip, {}, "keyframe_interval")
    assert "ingest_drift" not in watch.seen and "no_video" not in watch.seen
