"""The asyncio wrapper: order kept, segments delivered, loop never stalled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from pathlib import Path
from typing import Any

from bench.media import FlvTag
from sessions.hls import Segmenter, SegmenterWorker, SegmentInfo

from .media import parse_playlist


async def test_worker_delivers_segments_and_keeps_the_segmenter_off_the_loop(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    tags = [t for t in clips["hevc_aac"] if t.tag_type in (8, 9)]
    delivered: list[SegmentInfo] = []
    segmenter = Segmenter(tmp_path, window=10)
    threads: set[int] = set()
    add = segmenter.add

    def add_and_note_thread(*args: Any) -> list[SegmentInfo]:
        threads.add(threading.get_ident())
        return add(*args)

    segmenter.add = add_and_note_thread  # type: ignore[method-assign,assignment]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        worker = SegmenterWorker(segmenter, executor, delivered.extend)
        for index, tag in enumerate(tags):
            worker.feed(tag.tag_type, tag.timestamp, tag.body, 1_700_000_000 + index / 100)
            if index % 20 == 0:
                await asyncio.sleep(0.005)

        async def first_segments() -> None:  # they arrive while the session is live
            while not delivered:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(first_segments(), 60)  # a guard against hanging, not a bound
        last = await worker.finish()
        assert await worker.finish() == []
    assert threads and threading.get_ident() not in threads
    assert len(last) == 1 and delivered[-1] == last[0]
    assert [s.sequence for s in delivered] == list(range(len(delivered)))
    assert len(parse_playlist(tmp_path / "index.m3u8").segments) == len(delivered)


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


async def test_a_keyframe_does_not_wait_for_the_batch_timer(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """A keyframe may complete a segment, so it is handed over at once even when earlier
    messages are waiting for their batch timer (here one that would fire in an hour)."""
    executor = CountingExecutor()
    segmenter = Segmenter(tmp_path / "out")
    worker = SegmenterWorker(segmenter, executor, lambda _: None, batch_delay=3600)
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    audio = [t for t in tags if t.tag_type == 8][:3]
    keyframe = next(t for t in tags if t.tag_type == 9 and t.body[0] >> 4 == 1)
    for tag in audio:
        worker.feed(tag.tag_type, tag.timestamp, tag.body, 1.0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert executor.submitted == 0  # waiting for the timer
    worker.feed(keyframe.tag_type, keyframe.timestamp, keyframe.body, 1.0)
    for _ in range(100):
        await asyncio.sleep(0)
        if executor.submitted:
            break
    assert executor.submitted == 1
    await worker.finish()
    executor.shutdown()
