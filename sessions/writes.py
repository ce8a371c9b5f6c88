"""The server's writes to the store: one queue, in order, each write retried until it lands.

Everything the server writes on its own goes through one :class:`StoreWrites`: session
rows, their counters and their ends, segment rows, the event log, viewer seconds, closing
what a crash left open. Writes run one at a time in the order they were queued, so a
session's row lands before its segments and counters, and those before its end.

A write that fails with a fault a later try may get past (:func:`storage.retryable`: the
database locked or busy, the disk full, an I/O error) stays at the head of the queue and
is tried again after ``retry_delay`` seconds, doubling up to ``retry_delay_max``; the
writes behind it wait, so nothing that depends on it lands first. The pauses are spent
outside the store's write lock and reads have a connection of their own, so the API keeps
reading meanwhile; queueing never waits, so ingest and accounting go on. While a write is
failing the store is *degraded*: :meth:`StoreWrites.health` says so with the number of
writes pending and the last error (``/healthz``, ``/api/status``), ``store_degraded`` is
logged when it starts and every ``report_interval`` seconds while it lasts, and
``store_recovered`` once every write queued before the last failure has landed.

A write that fails in any other way (a violated constraint, bad SQL: a bug, which trying
again would only repeat) is dropped, logged as ``store_write_dropped`` with what it was,
and counted (``dropped_writes``), so that one bad row cannot hold the ledger back forever.
Writes that may be tried again are safe to repeat (see :mod:`storage`).

At shutdown :meth:`StoreWrites.flush` waits a bounded time for the queue to empty, then
gives up what is left and logs how many writes were lost (``store_writes_lost``); a
session whose end was among them stays ``live`` in the store until the next start closes
it as ``server_restart`` with the last counters that landed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, TypeVar, cast

from ingest.logs import log_event
from sessions.metrics import STORE_WRITE_BUCKETS, Buckets
from storage import Store, retryable

__all__ = ["FLUSH_TIMEOUT", "StoreWrites", "WriteHealth"]

logger = logging.getLogger("sessions.writes")

#: Seconds before a failed write is tried again; doubled after every failure, up to the max.
RETRY_DELAY: Final = 0.05
RETRY_DELAY_MAX: Final = 2.0
#: Seconds between ``store_degraded`` lines while writes keep failing.
REPORT_INTERVAL: Final = 30.0
#: Seconds shutdown waits for the writes still pending before it gives them up.
FLUSH_TIMEOUT: Final = 10.0

Job = Callable[[], Awaitable[object]]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class WriteHealth:
    """The state of the writes of one process (or, combined, of several)."""

    #: "degraded" while a write keeps failing and is being retried.
    status: Literal["ok", "degraded"]
    #: Writes queued and not yet landed (the failing one included).
    pending_writes: int
    #: Why the failing write failed (while degraded).
    last_error: str | None
    #: Writes dropped since start because they failed in a way a retry cannot fix.
    dropped_writes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WriteHealth:
        return cls(**data)

    @classmethod
    def combine(cls, healths: Iterable[WriteHealth]) -> WriteHealth:
        """Several processes' writes as one: degraded if any is, the counts added up."""
        items = list(healths)
        degraded = [h for h in items if h.status == "degraded"]
        return cls(
            status="degraded" if degraded else "ok",
            pending_writes=sum(h.pending_writes for h in items),
            last_error=next((h.last_error for h in degraded if h.last_error), None),
            dropped_writes=sum(h.dropped_writes for h in items),
        )


@dataclass(slots=True, eq=False)
class _Write:
    what: str
    run: Job
    #: Set for :meth:`StoreWrites.call`, whose caller waits for the result.
    result: asyncio.Future[Any] | None = None


class StoreWrites:
    """The ordered, retried queue of one process's writes to ``store``."""

    def __init__(
        self,
        store: Store,
        *,
        retry_delay: float = RETRY_DELAY,
        retry_delay_max: float = RETRY_DELAY_MAX,
        report_interval: float = REPORT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.retry_delay = retry_delay
        self.retry_delay_max = retry_delay_max
        self.report_interval = report_interval
        self._clock = clock
        self._sleep = sleep
        self._queue: deque[_Write] = deque()
        #: Seconds each write that landed took (the last try, retries not included).
        self.latency = Buckets(STORE_WRITE_BUCKETS)
        self._runner: asyncio.Task[None] | None = None
        #: Writes queued since start, and those settled (landed, dropped or given up):
        #: they settle in order, so ``join`` waits for a count.
        self._queued = 0
        self._settled = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._failing_since: float | None = None
        #: While degraded: the writes queued up to the last failure, which must all land
        #: before the store counts as recovered.
        self._backlog = 0
        self._reported_at = 0.0
        self._retries = 0
        self._last_error: str | None = None
        self.dropped = 0
        self.lost = 0

    # -- queueing -----------------------------------------------------------------------

    def put(self, what: str, job: Job) -> None:
        """Queue a write (``what`` names it in logs); returns at once."""
        self._add(_Write(what, job))

    def event(self, kind: str, *, at: float, **fields: str | None) -> None:
        """Queue an event-log row (``fields`` as :meth:`storage.Store.log_event` takes)."""
        store = self.store
        self.put(f"event {kind}", lambda: store.log_event(kind, at=at, **fields))

    async def call(self, what: str, job: Callable[[], Awaitable[_T]]) -> _T:
        """Queue a write and wait for it to land: its result, or the error (one a retry
        cannot fix) that it failed with."""
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._add(_Write(what, job, result))
        return cast(_T, await result)

    async def join(self) -> None:
        """Wait until every write queued before this call has landed (or was dropped, or
        given up by :meth:`flush`)."""
        target = self._queued
        if self._settled >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        await waiter

    async def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the pending writes to land; give up those
        still pending then (logged as ``store_writes_lost``) and return how many. The
        queue can be used again afterwards."""
        try:
            async with asyncio.timeout(timeout):
                await self.join()
        except TimeoutError:
            pass
        runner, self._runner = self._runner, None
        if not self._queue:
            return 0
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        lost = list(self._queue)
        self._queue.clear()
        for write in lost:
            if write.result is not None:
                write.result.cancel()
        self.lost += len(lost)
        log_event(
            logger,
            logging.ERROR,
            "store_writes_lost",
            count=len(lost),
            first=lost[0].what,
            error=self._last_error,
            waited=timeout,
        )
        self._failing_since = None
        self._settle(len(lost))
        return len(lost)

    # -- state --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Writes queued and not yet landed."""
        return len(self._queue)

    @property
    def degraded(self) -> bool:
        return self._failing_since is not None

    def health(self) -> WriteHealth:
        degraded = self._failing_since is not None
        return WriteHealth(
            status="degraded" if degraded else "ok",
            pending_writes=len(self._queue),
            last_error=self._last_error if degraded else None,
            dropped_writes=self.dropped,
        )

    # -- running ------------------------------------------------------------------------

    def _add(self, write: _Write) -> None:
        self._queue.append(write)
        self._queued += 1
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Run the writes at the head of the queue until it is empty."""
        queue = self._queue
        delay = self.retry_delay
        try:
            while queue:
                write = queue[0]
                started = self._clock()
                try:
                    value = await write.run()
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # flush gave up: the write stays queued, flush counts it
                    queue.popleft()
                    self._drop(write, RuntimeError("the write was cancelled"))
                except Exception as exc:
                    if retryable(exc):
                        self._failed(write, exc)
                        await self._sleep(delay)
                        delay = min(delay * 2, self.retry_delay_max)
                        continue
                    queue.popleft()
                    self._drop(write, exc)
                else:
                    queue.popleft()
                    self.latency.observe(max(0.0, self._clock() - started))
                    if write.result is not None and not write.result.done():
                        write.result.set_result(value)
                delay = self.retry_delay
                self._settle(1)
                if self._failing_since is not None and self._settled >= self._backlog:
                    self._recovered()
        finally:
            if self._runner is asyncio.current_task():
                self._runner = None

    def _settle(self, count: int) -> None:
        self._settled += count
        waiting = []
        for target, waiter in self._waiters:
            if target <= self._settled:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self._waiters = waiting

    def _failed(self, write: _Write, exc: Exception) -> None:
        now = self._clock()
        self._last_error = str(exc) or type(exc).__name__
        self._retries += 1
        self._backlog = self._queued
        if self._failing_since is None:
            self._failing_since = self._reported_at = now
        elif now - self._reported_at >= self.report_interval:
            self._reported_at = now
        else:
            return
        log_event(
            logger,
            logging.WARNING,
            "store_degraded",
            pending=len(self._queue),
            write=write.what,
            error=self._last_error,
            retries=self._retries,
            failing_for=round(now - self._failing_since, 1),
        )

    def _recovered(self) -> None:
        since = self._failing_since
        assert since is not None
        log_event(
            logger,
            logging.INFO,
            "store_recovered",
            retries=self._retries,
            failed_for=round(self._clock() - since, 1),
        )
        self._failing_since = None
        self._retries = 0

    def _drop(self, write: _Write, exc: Exception) -> None:
        self.dropped += 1
        if write.result is not None and not write.result.done():
            write.result.set_exception(exc)
            return
        log_event(
            logger,
            logging.ERROR,
            "store_write_dropped",
            write=write.what,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
