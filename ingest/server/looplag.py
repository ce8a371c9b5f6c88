"""How late the event loop runs: a ticker that measures its own wake-up delay.

Every ``interval`` seconds a callback notes how much later than asked it ran; the last
``window`` samples give percentiles for the status endpoint and the benchmarks. A loop
that is blocked (a slow callback, a stall on disk) shows up here before anywhere else.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ingest.logs import percentiles_ms
from sessions.metrics import LOOP_LAG_BUCKETS, Buckets


class LoopLagMonitor:
    def __init__(self, interval: float = 0.05, window: int = 1200) -> None:
        self.interval = interval
        self._samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None
        #: Every sample since start, for ``GET /metrics``.
        self.histogram = Buckets(LOOP_LAG_BUCKETS)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - asked)
            self._samples.append(lag)
            self.histogram.observe(lag)

    def snapshot(self) -> dict[str, float] | None:
        """p50, p99 and max lag in milliseconds over the recent window (None before the
        first sample)."""
        return percentiles_ms(self._samples)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
