"""How a server process keeps its heap small and its collector quiet.

Two settings, both applied once per process (the main one and each RTMP worker):

* glibc's malloc gives every thread that allocates its own arena, and an arena keeps what
  its thread freed for reuse by that thread. The segmenter threads each allocate and
  free a segment's worth of buffers every couple of seconds, so every extra thread held
  ~10 MiB more at 100 streams. :func:`limit_malloc_arenas` caps the arenas at one (the
  threads take turns on the interpreter lock anyway), unless ``MALLOC_ARENA_MAX`` is set
  in the environment, which glibc applies itself and which then wins.
* :func:`settle_heap` runs once startup is done: what exists then lives as long as the
  process, so ``gc.freeze`` moves it out of the cyclic collector's sight and full
  collections stop re-scanning every module, route and codec object (~40 ms each with
  100 live streams, a stall of the event loop). It also has young objects collected
  every :data:`YOUNG_THRESHOLD` net allocations instead of CPython's 700: per media
  message the server makes a few short-lived tuples and lists but nearly no reference
  cycles, and at 700 the batches of messages waiting for the segmenters were scanned
  ~12 times a second at 100 streams (0.4-0.5 ms each, ~2% of the process's CPU) while a
  whole run freed 13 objects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

#: mallopt's parameter number for the arena cap (glibc's malloc.h).
_M_ARENA_MAX = -8
#: The cap: one arena, the main one, for every thread.
ARENAS = 1
#: Net allocations of container objects between young-generation collections.
YOUNG_THRESHOLD = 20_000


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for threads started from now on; True if it applied
    (False on another C library, or when ``MALLOC_ARENA_MAX`` is set)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


def settle_heap() -> None:
    """Call once a process has started (modules imported, app built, listening)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
