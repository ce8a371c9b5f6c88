"""The asyncio wrapper: order kept, segments delivered, loop never stalled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import faulthandler
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bench.media import FlvTag
from sessions.hls import HandOver, Segmenter, SegmenterWorker, SegmentInfo

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
        worker = SegmenterWorker(segmenter, HandOver(executor), delivered.extend)
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
        worker = SegmenterWorker(segmenter, HandOver(executor), lambda _: None, max_pending_ms=2000)
        for tag in tags:  # all fed at once, nothing can drain yet
            worker.feed(tag.tag_type, tag.timestamp, tag.body, 1.0)
        await worker.finish()
        blocker.result()
    assert worker.dropped > 0
    assert [i["code"] for i in segmenter.issues] == ["segmenter_overloaded"]


@pytest.mark.slow
async def test_one_job_carries_every_waiting_session(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """One thread hop per tick for all sessions, not one per session or per message."""
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    audio = [t for t in tags if t.tag_type == 8][:40]
    added: list[int] = []

    def counted(segmenter: Segmenter) -> Segmenter:
        add = segmenter.add

        def add_and_count(*args: Any) -> list[SegmentInfo]:
            added.append(id(segmenter))
            return add(*args)

        segmenter.add = add_and_count  # type: ignore[method-assign,assignment]
        return segmenter

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        handover = HandOver(executor, batch_delay=0.2)
        workers = [
            SegmenterWorker(counted(Segmenter(tmp_path / str(i))), handover, lambda _: None)
            for i in range(5)
        ]
        now = time.time()
        for tag in audio:
            for worker in workers:
                worker.feed(tag.tag_type, tag.timestamp, tag.body, now)
        await asyncio.sleep(0.5)
        assert handover.jobs == 1
        assert all(not w._pending and w._out is None for w in workers)
        for worker in workers:
            await worker.finish()
    assert [added.count(id(w.segmenter)) for w in workers] == [len(audio)] * 5


@pytest.mark.parametrize("frame_type", [1, 4], ids=["keyframe", "generated-keyframe"])
async def test_a_keyframe_does_not_wait_for_the_batch_timer(
    clips: dict[str, list[FlvTag]], tmp_path: Path, frame_type: int
) -> None:
    """A keyframe may complete a segment, so it is handed over at once even when earlier
    messages are waiting for their batch timer (here one that would fire in an hour). A
    generated keyframe (frame type 4) is one too, as the segmenter sees it."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        handover = HandOver(executor, batch_delay=3600)
        worker = SegmenterWorker(Segmenter(tmp_path / "out"), handover, lambda _: None)
        tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
        audio = [t for t in tags if t.tag_type == 8][:3]
        keyframe = next(t for t in tags if t.tag_type == 9 and t.body[0] >> 4 == 1)
        body = bytes((frame_type << 4 | keyframe.body[0] & 0x0F,)) + keyframe.body[1:]
        keyframe = FlvTag(keyframe.tag_type, keyframe.timestamp, body)
        for tag in audio:
            worker.feed(tag.tag_type, tag.timestamp, tag.body, 1.0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert handover.jobs == 0  # waiting for the timer
        worker.feed(keyframe.tag_type, keyframe.timestamp, keyframe.body, 1.0)
        for _ in range(100):
            await asyncio.sleep(0)
            if handover.jobs:
                break
        assert handover.jobs == 1
        await worker.finish()


async def test_a_keyframe_fed_while_a_batch_is_out_goes_when_it_returns(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """A session has one batch out at a time; what arrives meanwhile (here a keyframe)
    waits for it and then goes at once, not after the batch timer."""
    release = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        handover = HandOver(executor, batch_delay=3600)
        segmenter = Segmenter(tmp_path / "out")
        add = segmenter.add

        def held_add(*args: Any) -> list[SegmentInfo]:
            release.wait(60)  # a guard against hanging, not a bound
            return add(*args)

        segmenter.add = held_add  # type: ignore[method-assign,assignment]
        worker = SegmenterWorker(segmenter, handover, lambda _: None)
        keys = [t for t in clips["h264_aac"] if t.tag_type == 9 and t.body[0] >> 4 == 1][:2]
        worker.feed(9, keys[0].timestamp, keys[0].body, 1.0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert handover.jobs == 1 and worker._out is not None
        worker.feed(9, keys[1].timestamp, keys[1].body, 1.0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert handover.jobs == 1  # held behind the batch that is out
        release.set()
        await asyncio.wait_for(asyncio.shield(worker._out), 60)
        for _ in range(5):
            await asyncio.sleep(0)
        assert handover.jobs == 2
        await worker.finish()
    assert segmenter.segments == [] or segmenter.segments[0].sequence == 0


async def test_one_failing_segmenter_does_not_stop_the_others_in_its_job(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        handover = HandOver(executor, batch_delay=0.05)
        broken = Segmenter(tmp_path / "broken")

        def fail(*args: Any) -> list[SegmentInfo]:
            raise RuntimeError("boom")

        broken.add = fail  # type: ignore[method-assign,assignment]
        delivered: list[SegmentInfo] = []
        workers = [
            SegmenterWorker(broken, handover, lambda _: None),
            SegmenterWorker(Segmenter(tmp_path / "good"), handover, delivered.extend),
        ]
        half = len(tags) // 2
        for tag in tags[:half]:
            for worker in workers:
                worker.feed(tag.tag_type, tag.timestamp, tag.body, 1.0)
        for _ in range(6000):  # a guard against hanging, not a bound
            if workers[0].failed and workers[0]._out is None:
                break
            await asyncio.sleep(0.01)
        for tag in tags[half:]:
            for worker in workers:
                worker.feed(tag.tag_type, tag.timestamp, tag.body, 1.0)
        for worker in workers:
            await worker.finish()
    assert delivered and [s.sequence for s in delivered] == list(range(len(delivered)))
    assert [i["code"] for i in broken.issues] == ["segmenter_failed"]
    assert workers[0].failed and not workers[1].failed
    assert workers[0].dropped > 0 and workers[1].dropped == 0


async def test_finish_right_after_a_batch_came_back(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """The batch's job is done but its done callback (which clears the worker's ``_out``)
    has not run yet: finish must let it run instead of spinning on the done job."""
    keyframe = next(t for t in clips["h264_aac"] if t.tag_type == 9 and t.body[0] >> 4 == 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        worker = SegmenterWorker(Segmenter(tmp_path / "out"), HandOver(executor), print)
        worker.feed(9, keyframe.timestamp, keyframe.body, 1.0)
        for _ in range(10_000):  # a guard against hanging, not a bound
            await asyncio.sleep(0)
            if worker._out is not None and worker._out.done():
                break
        # The first turn that sees the job done is the one that scheduled its callbacks.
        assert worker._out is not None and worker._out.done()
        faulthandler.dump_traceback_later(60, exit=True)  # a spin never yields to wait_for
        try:
            await worker.finish()
        finally:
            faulthandler.cancel_dump_traceback_later()
        assert worker._out is None


async def test_a_failing_segments_callback_does_not_strand_the_job(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """Every session of a job is released when it comes back, even if delivering one
    session's segments raises."""
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    delivered: list[SegmentInfo] = []

    def refuse(segments: list[SegmentInfo]) -> None:
        raise RuntimeError("boom")

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        handover = HandOver(executor, batch_delay=0.05)
        workers = [
            SegmenterWorker(Segmenter(tmp_path / "a"), handover, refuse),
            SegmenterWorker(Segmenter(tmp_path / "b"), handover, delivered.extend),
        ]
        for index, tag in enumerate(tags):
            for worker in workers:
                worker.feed(tag.tag_type, tag.timestamp, tag.body, 1.0)
            if index % 50 == 0:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(workers[1].finish(), 60)  # a guard against hanging
        with pytest.raises(RuntimeError):  # its last segment's delivery raises too
            await asyncio.wait_for(workers[0].finish(), 60)
    assert len(delivered) >= 2
    assert all(w._out is None for w in workers)
