"""The loop-lag monitor sees a blocked event loop."""

from __future__ import annotations

import asyncio
import time

from ingest.server.looplag import LoopLagMonitor


async def test_a_blocked_loop_shows_as_lag() -> None:
    monitor = LoopLagMonitor(interval=0.01)
    assert monitor.snapshot() is None
    monitor.start()
    await asyncio.sleep(0.1)
    time.sleep(0.2)  # block the loop
    await asyncio.sleep(0.05)
    monitor.stop()
    snapshot = monitor.snapshot()
    assert snapshot is not None
    assert snapshot["max"] >= 150
    assert snapshot["p50"] < snapshot["max"]
