"""``python -m tests.support.stalled serve ...``: the real server, except that it stops at
one step of a session's end and waits there to be killed, so a test can ``kill -9`` it at
exactly that step.

``STALL_AT`` names the step: ``remux`` (the MP4 is written under its temporary name and
about to be renamed: what a kill during the remux leaves), or ``delete`` (an unrecorded
session's media is about to be deleted: the state a kill before the delay leaves). On
reaching it, the process writes the session's folder to the file ``STALL_ANNOUNCE`` and
blocks that thread; the event loop goes on.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any


def _stall(folder: Path) -> None:
    Path(os.environ["STALL_ANNOUNCE"]).write_text(str(folder))
    while True:
        time.sleep(60)


def _install(step: str) -> None:
    if step == "remux":
        real_replace = os.replace

        def replace(src: Any, dst: Any, **kwargs: Any) -> None:
            if str(src).endswith(".mp4.tmp"):
                _stall(Path(src).parent)
            real_replace(src, dst, **kwargs)

        os.replace = replace
    elif step == "delete":
        import sessions.media_cleanup

        sessions.media_cleanup.delete_media = _stall
    else:
        raise SystemExit(f"unknown STALL_AT {step!r}")


if __name__ == "__main__":
    _install(os.environ["STALL_AT"])
    from ingest.server.cli import main

    sys.exit(main())
