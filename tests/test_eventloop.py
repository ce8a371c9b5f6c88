"""The process settings run_loop applies before it starts the loop."""

from __future__ import annotations

import json
import subprocess
import sys

from ingest.eventloop import YOUNG_THRESHOLD


def test_run_loop_tunes_the_collector() -> None:
    # In a child process: freezing the collector here would change this test process.
    code = (
        "import gc, json\n"
        "from ingest.eventloop import run_loop\n"
        "before = gc.get_threshold()\n"
        "seen = {}\n"
        "async def main():\n"
        "    seen['threshold'] = gc.get_threshold()\n"
        "    seen['frozen'] = gc.get_freeze_count()\n"
        "run_loop(main())\n"
        "print(json.dumps([before, seen['threshold'], seen['frozen']]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    before, during, frozen = json.loads(out.stdout)
    assert before[0] != YOUNG_THRESHOLD
    assert during == [YOUNG_THRESHOLD, before[1], before[2]]
    assert frozen > 1000  # the modules imported so far
