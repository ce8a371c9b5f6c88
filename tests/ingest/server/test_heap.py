"""Process heap settings: the malloc arena cap and the frozen startup heap."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import pytest

from ingest.server.heap import YOUNG_THRESHOLD, limit_malloc_arenas, settle_heap


def _threads_arenas(limit: bool) -> int:
    """Arenas glibc made for a process whose threads each allocate (``malloc_info``
    lists one <heap> per arena)."""
    script = textwrap.dedent(
        f"""
        import ctypes, ctypes.util, os, tempfile, threading
        from ingest.server.heap import limit_malloc_arenas
        if {limit}:
            assert limit_malloc_arenas()
        def work():
            blocks = [bytearray(200_000) for _ in range(20)]
            del blocks
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.fdopen.restype = ctypes.c_void_p
        with tempfile.TemporaryFile() as f:
            stream = libc.fdopen(os.dup(f.fileno()), b"w")
            libc.malloc_info(0, ctypes.c_void_p(stream))
            libc.fclose(ctypes.c_void_p(stream))
            f.seek(0)
            print(f.read().decode().count("<heap nr="))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.slow
def test_the_arena_cap_keeps_threads_on_one_arena() -> None:
    assert _threads_arenas(limit=False) > 1
    assert _threads_arenas(limit=True) == 1


def test_an_arena_setting_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


def test_settle_heap_freezes_what_exists_and_collects_young_objects_less_often() -> None:
    before = gc.get_freeze_count()
    threshold = gc.get_threshold()  # (servers started by earlier tests may have set it)
    gc.set_threshold(700, threshold[1], threshold[2])
    try:
        settle_heap()
        assert gc.get_freeze_count() > before
        assert gc.get_threshold() == (YOUNG_THRESHOLD, threshold[1], threshold[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
