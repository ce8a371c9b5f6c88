"""Running a :class:`~.segmenter.Segmenter` off the event loop.

``feed`` only appends to a pending list (O(1), never blocks). Messages are handed over
in batches, not one thread hop per message: a video keyframe (which may complete a
segment) starts a drain at once, even while earlier messages wait for their batch timer;
anything else within ``batch_delay`` seconds. A drain
hands the whole pending batch to the executor, where
``Segmenter.add`` runs message by message; one batch at a time per segmenter, so the
order is kept. Completed segments are passed to ``on_segments`` back on the event loop.

If the executor falls behind by more than ``max_pending_ms`` of media, newly fed
messages are dropped (and a ``segmenter_overloaded`` issue recorded once per episode)
instead of letting memory grow without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable

from .playlist import SegmentInfo
from .segmenter import Packets, Segmenter

__all__ = ["SegmenterWorker"]

_Message = tuple[int, int, bytes, float, Packets | None]
_VIDEO = 9


def _is_keyframe(first_byte: int) -> bool:
    """Frame type 1 (key) in a legacy or an Enhanced RTMP video tag header."""
    frame_type = (first_byte >> 4) & (0x07 if first_byte & 0x80 else 0x0F)
    return frame_type == 1


class SegmenterWorker:
    """Feeds one segmenter from the event loop through an executor."""

    def __init__(
        self,
        segmenter: Segmenter,
        executor: concurrent.futures.Executor,
        on_segments: Callable[[list[SegmentInfo]], None],
        *,
        max_pending_ms: int = 10_000,
        batch_delay: float = 0.25,
    ) -> None:
        self.segmenter = segmenter
        self._executor = executor
        self._on_segments = on_segments
        self._max_pending_ms = max_pending_ms
        self._batch_delay = batch_delay
        self._timer: asyncio.TimerHandle | None = None
        self._pending: list[_Message] = []
        self._task: asyncio.Task[None] | None = None
        self._overloaded = False
        self._finished = False
        self.dropped = 0

    def feed(
        self,
        message_type: int,
        timestamp: int,
        payload: bytes,
        arrival: float,
        packets: Packets | None = None,
    ) -> None:
        """Queue one message for the segmenter (call on the event loop); ``packets`` are
        its parsed packets when the caller has them already."""
        if self._finished:
            return
        pending = self._pending
        if pending:
            span = (timestamp - pending[0][1]) & 0xFFFF_FFFF
            if self._max_pending_ms < span < 0x8000_0000:
                self.dropped += 1
                if not self._overloaded:
                    self._overloaded = True
                    self._record_overload(span)
                return
        pending.append((message_type, timestamp, payload, arrival, packets))
        if self._task is not None:
            return
        if message_type == _VIDEO and payload and _is_keyframe(payload[0]):
            # A keyframe may complete a segment: hand it over at once.
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._task = asyncio.get_running_loop().create_task(self._drain())
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._batch_delay, self._start_drain
            )

    def _start_drain(self) -> None:
        self._timer = None
        if self._task is None and self._pending:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def finish(self) -> list[SegmentInfo]:
        """Wait for queued work, then finish the segmenter in the executor."""
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._start_drain()
        while self._task is not None:
            await asyncio.shield(self._task)
        loop = asyncio.get_running_loop()
        segments = await loop.run_in_executor(self._executor, self.segmenter.finish)
        if segments:
            self._on_segments(segments)
        return segments

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self._overloaded = False
                segments = await loop.run_in_executor(self._executor, self._run, batch)
                if segments:
                    self._on_segments(segments)
        finally:
            self._task = None

    def _run(self, batch: list[_Message]) -> list[SegmentInfo]:
        done: list[SegmentInfo] = []
        add = self.segmenter.add
        for message_type, timestamp, payload, arrival, packets in batch:
            done.extend(add(message_type, timestamp, payload, arrival, packets))
        return done

    def _record_overload(self, span: int) -> None:
        self.segmenter.record_issue(
            "segmenter_overloaded", f"segmenter {span / 1000:.1f} s behind; dropping media"
        )
