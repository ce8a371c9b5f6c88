"""The benchmark's /proc readings of a process tree (a server with worker processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import procstat


@pytest.mark.slow
def test_a_tree_counts_the_children_and_their_cpu() -> None:
    # A parent that starts a busy child, then waits.
    code = (
        "import subprocess, sys, time;"
        "c = subprocess.Popen([sys.executable, '-c', 'import time\\n"
        "end = time.time() + 30\\nwhile time.time() < end: pass']);"
        "print(c.pid, flush=True); c.wait()"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert procstat.tree(parent.pid) == [parent.pid, child]
        assert procstat.tree(os.getpid())[0] == os.getpid()
        time.sleep(0.5)
        # Read the members first: the tree's figure, read after, can only be larger.
        own, child_cpu = procstat.cpu_seconds(parent.pid), procstat.cpu_seconds(child)
        assert child_cpu > 0.1
        assert procstat.tree_cpu_seconds(parent.pid) >= own + child_cpu
        one, both = procstat.memory(parent.pid), procstat.tree_memory(parent.pid)
        assert both.rss > one.rss and both.peak_rss > one.peak_rss
        assert 0 < one.pss <= one.rss and one.pss < both.pss <= both.rss
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
