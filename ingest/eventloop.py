"""How the server's processes run: the event loop, and the garbage collector's settings."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any

#: Net allocations of container objects between young-generation collections (CPython's
#: default is 700). Per media message the server makes a few short-lived tuples and
#: lists, but nearly no reference cycles: at the default, batches of messages waiting
#: for the segmenter were scanned ~12 times a second for nothing (~2% of the process's
#: CPU at 100 streams), while almost nothing was ever collected.
YOUNG_THRESHOLD = 20_000


def tune_collector() -> None:
    """Collect young objects less often, and move everything made until now (modules,
    configuration, the app) out of the collector's scans for good."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    gc.freeze()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Tune the collector, then run ``main`` on uvloop's event loop when it is installed
    (the ``fast`` extra), else on asyncio's own."""
    tune_collector()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
