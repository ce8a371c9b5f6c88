"""The asyncio wrapper: order kept, segments delivered, loop never stalled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from pathlib import Path

from bench.media import FlvTag
from sessions.hls import Segmenter, SegmenterWorker, SegmentInfo

from .media import parse_playlist


async def test_worker_delivers_segments_without_stalling_the_loop(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    tags = [t for t in clips["hevc_aac"] + [] if t.tag_type in (8, 9)]
    delivered: list[SegmentInfo] = []
    delays: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            delays.append(time.perf_counter() - before - 0.01)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        worker = SegmenterWorker(Segmenter(tmp_path, window=10), executor, delivered.extend)
        tick = asyncio.create_task(ticker())
        for index, tag in enumerate(tags):
            worker.feed(tag.tag_type, tag.timestamp, tag.body, 1_700_000_000 + index / 100)
            if index % 20 == 0:
                await asyncio.sleep(0.005)
        before_finish = len(delivered)
        last = await worker.finish()
        assert await worker.finish() == []
        stop.set()
        await tick
    assert before_finish >= 1
    assert len(last) == 1 and delivered[-1] == last[0]
    assert [s.sequence for s in delivered] == list(range(len(delivered)))
    assert len(parse_playlist(tmp_path / "index.m3u8").segments) == len(delivered)
    assert max(delays) < 0.2


async def test_worker_drops_when_overloaded(clips: dict[str, list[FlvTag]], tmp_path: Path) -> None:
    tags = [t for t in clips["h264"] if t.tag_type in (8, 9)]
    segmenter = Segmenter(tmp_path)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        blocker = executor.submit(time.sleep, 0.3)  # the executor is busy elsewhere
        worker = SegmenterWorker(segmenter, executor, lambda _: None, max_pending_ms=2000)
        for tag in tags:  # all fed at once, nothing can drain yet
            worker.feed(tag.tag_type, tag.timestamp, tag.body, 1.0)
        await worker.finish()
        blocker.result()
    assert worker.dropped > 0
    assert [i["code"] for i in segmenter.issues] == ["segmenter_overloaded"]


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def test_messages_are_handed_over_in_batches(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """One thread hop per batch, not per message; a keyframe goes at once."""
    executor = CountingExecutor()
    segments: list[SegmentInfo] = []
    worker = SegmenterWorker(
        Segmenter(tmp_path / "out"), executor, segments.extend, batch_delay=0.2
    )
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    now = time.time()
    for tag in tags[:40]:
        worker.feed(tag.tag_type, tag.timestamp, tag.body, now)
    await asyncio.sleep(0.5)
    assert 1 <= executor.submitted <= 3, executor.submitted
    await worker.finish()
    executor.shutdown()
