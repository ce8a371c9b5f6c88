"""A wall clock the tests can move ahead in the transcoder processes: :func:`clock` is
``time.time()`` plus the seconds written in the file named by :data:`LATE_FILE_ENV`
(picklable: a module function, read again at every call)."""

from __future__ import annotations

import os
import time
from pathlib import Path

LATE_FILE_ENV = "RENDITIONS_TEST_LATE_FILE"


def clock() -> float:
    name = os.environ.get(LATE_FILE_ENV)
    late = 0.0
    if name:
        try:
            late = float(Path(name).read_text() or 0)
        except (OSError, ValueError):
            late = 0.0
    return time.time() + late
