"""Running :class:`~.segmenter.Segmenter` objects off the event loop.

Each live session has a :class:`SegmenterWorker`; all of them share one
:class:`HandOver`, which gives the executor jobs that carry many sessions' waiting
messages, not one job per session: every ``batch_delay`` seconds one job with every
session that has media waiting, and, on the loop's next turn after a video keyframe
(which may complete a segment), one with the sessions that have a keyframe waiting.

``feed`` only appends to the session's pending list (O(1), never blocks). In the
executor, ``Segmenter.add`` runs message by message, session after session; a session
has at most one batch out at a time, so its order is kept and no two threads touch one
segmenter. Completed segments are passed to each session's ``on_segments`` back on the
event loop when the job ends.

If a session's batch is still out while more than ``max_pending_ms`` of its media waits
behind it, newly fed messages are dropped (and a ``segmenter_overloaded`` issue recorded
once per episode) instead of letting memory grow without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable

from ingest.flv import KEYFRAME_FIRST_BYTES
from ingest.logs import log_event
from ingest.rtmp.events import VIDEO

from .playlist import SegmentInfo
from .segmenter import Packets, Segmenter

__all__ = ["HandOver", "SegmenterWorker"]

logger = logging.getLogger(__name__)

_Message = tuple[int, int, bytes, float, Packets | None]
_Job = list[tuple["SegmenterWorker", list[_Message]]]


class HandOver:
    """Takes the pending messages of every waiting session to the executor in one job.

    It owns which sessions wait for a job and when the next job goes; each session's
    :class:`SegmenterWorker` owns its messages and flags, and is asked for them."""

    def __init__(self, executor: concurrent.futures.Executor, *, batch_delay: float = 0.25):
        self.executor = executor
        self.batch_delay = batch_delay
        #: Executor jobs given so far (each carries one or more sessions' batches).
        self.jobs = 0
        self._waiting: list[SegmenterWorker] = []
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None

    def wait(self, worker: SegmenterWorker) -> None:
        """``worker`` has pending messages and no batch out: take them with the next job."""
        self._waiting.append(worker)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.batch_delay, self._run_all)

    def hurry(self) -> None:
        """On the loop's next turn, give a job with the sessions that have a keyframe
        waiting (the others keep filling their batches until the timer)."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self._run_urgent)

    def forget(self, worker: SegmenterWorker) -> None:
        """``worker`` no longer waits (it is finishing)."""
        self._waiting.remove(worker)

    def _run_urgent(self) -> None:
        self._soon = None
        urgent = [w for w in self._waiting if w.urgent]
        if urgent:
            self._waiting = [w for w in self._waiting if not w.urgent]
            self._give(urgent)

    def _run_all(self) -> None:
        self._timer = None
        waiting, self._waiting = self._waiting, []
        if waiting:
            self._give(waiting)

    def _give(self, workers: list[SegmenterWorker]) -> None:
        job: _Job = [(worker, worker.take()) for worker in workers]
        out = asyncio.get_running_loop().run_in_executor(self.executor, _run_job, job)
        for worker in workers:
            worker.sent(out)
        out.add_done_callback(lambda done: self._done(job, done))
        self.jobs += 1

    def _done(self, job: _Job, out: asyncio.Future[list[list[SegmentInfo]]]) -> None:
        results: list[list[SegmentInfo]] = [[] for _ in job]
        if out.cancelled():
            pass
        elif (exc := out.exception()) is not None:
            log_event(logger, logging.ERROR, "segmenter_job_failed", exc_info=exc)
        else:
            results = out.result()
        for worker, _ in job:
            worker.sent(None)
        for (worker, _), segments in zip(job, results, strict=True):
            worker.returned(segments)


def _run_job(job: _Job) -> list[list[SegmentInfo]]:
    """In the executor: every batch of the job, each session's messages in order."""
    return [worker.segment(batch) for worker, batch in job]


class SegmenterWorker:
    """Feeds one session's segmenter from the event loop through the shared hand-over."""

    def __init__(
        self,
        segmenter: Segmenter,
        handover: HandOver,
        on_segments: Callable[[list[SegmentInfo]], None],
        *,
        max_pending_ms: int = 10_000,
    ) -> None:
        self.segmenter = segmenter
        self._handover = handover
        self._on_segments = on_segments
        self._max_pending_ms = max_pending_ms
        self._pending: list[_Message] = []
        #: The job carrying this session's batch, while it is out.
        self._out: asyncio.Future[list[list[SegmentInfo]]] | None = None
        #: Whether the hand-over has this session among those waiting for a job.
        self._waiting = False
        self._urgent = False
        self._overloaded = False
        self._finished = False
        #: Set (in the executor) when the segmenter raised; its media is dropped after.
        self.failed = False
        self.dropped = 0

    @property
    def urgent(self) -> bool:
        """Whether a video keyframe (which may complete a segment) is waiting."""
        return self._urgent

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
        if self.failed:
            self.dropped += 1
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
        if message_type == VIDEO and payload and payload[0] in KEYFRAME_FIRST_BYTES:
            # A keyframe may complete a segment: no waiting for the timer.
            self._urgent = True
            if self._out is None:
                if not self._waiting:
                    self._wait()
                self._handover.hurry()
        elif not self._waiting and self._out is None:
            self._wait()

    def _wait(self) -> None:
        self._waiting = True
        self._handover.wait(self)

    # -- what the hand-over asks ---------------------------------------------------------

    def take(self) -> list[_Message]:
        """The messages waiting, for a job; the session waits no more."""
        batch, self._pending = self._pending, []
        self._waiting = self._urgent = self._overloaded = False
        return batch

    def sent(self, out: asyncio.Future[list[list[SegmentInfo]]] | None) -> None:
        """The job carrying this session's batch (None: it came back)."""
        self._out = out

    def segment(self, batch: list[_Message]) -> list[SegmentInfo]:
        """In the executor: segment ``batch`` in order. A failure is recorded on the
        segmenter, which takes no more media (and does not stop the job's other
        sessions)."""
        done: list[SegmentInfo] = []
        if self.failed:
            self.dropped += len(batch)
            return done
        add = self.segmenter.add
        try:
            for message_type, timestamp, payload, arrival, packets in batch:
                done.extend(add(message_type, timestamp, payload, arrival, packets))
        except Exception as exc:
            self.failed = True
            log_event(logger, logging.ERROR, "segmenter_failed", exc_info=exc)
            self.segmenter.record_issue(
                "segmenter_failed", f"segmenting failed: {type(exc).__name__}"
            )
        return done

    def returned(self, segments: list[SegmentInfo]) -> None:
        """This session's batch came back with ``segments``: count them, and wait for the
        next job if more arrived meanwhile."""
        if segments:
            try:
                self._on_segments(segments)
            except Exception as exc:
                log_event(logger, logging.ERROR, "segments_not_counted", exc_info=exc)
        if self._pending and not self._finished:
            self._wait()
            if self._urgent:
                self._handover.hurry()

    # -- the end ----------------------------------------------------------------------

    async def finish(self, *, end: bool = True) -> list[SegmentInfo]:
        """Wait for the batch that is out, then segment what is left and finish the
        segmenter in the executor (``end``: see :meth:`.Segmenter.finish`)."""
        if self._finished:
            return []
        self._finished = True
        if self._waiting:
            self._waiting = False
            self._handover.forget(self)
        while (out := self._out) is not None:
            if out.done():
                await asyncio.sleep(0)  # its done callback, which clears _out, is queued
            else:
                await asyncio.shield(out)
        batch, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        segments = await loop.run_in_executor(self._handover.executor, self._last, batch, end)
        if segments:
            self._on_segments(segments)
        return segments

    def _last(self, batch: list[_Message], end: bool) -> list[SegmentInfo]:
        return self.segment(batch) + self.segmenter.finish(end=end)

    def _record_overload(self, span: int) -> None:
        self.segmenter.record_issue(
            "segmenter_overloaded", f"segmenter {span / 1000:.1f} s behind; dropping media"
        )
