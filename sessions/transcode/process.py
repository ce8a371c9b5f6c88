"""A transcoder process: the ladders of the sessions it was given, one message at a time.

Messages in (from :class:`~.pool.TranscodePool`), each a tuple:
``("start", session, target, profiles, source)``, ``("feed", session, items, size)``,
``("finish", session)``; end of input stops the process. Messages out:
``("report", session, report, segments, size)`` after every message that changed
something (``size``: the fed bytes now done with, which frees room in the queue), and
``("finished", session, report, segments)``.

A ladder that raises ends that session's renditions (``transcode_failed``, its playlists
ended) and no other; the process goes on with the rest.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ingest.config import LogConfig
from ingest.logs import apply_log_config, log_event

from .interface import RenditionSegment, RenditionsReport
from .ladder import EngineSettings, Ladder

__all__ = ["ProcessSettings", "serve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    engine: EngineSettings
    #: Wall clock the real-time lag is measured with (picklable: a module function).
    clock: Callable[[], float]
    log: LogConfig | None = None


def serve(inbox: Connection, outbox: Connection, settings: ProcessSettings) -> None:
    """The process's main loop (the target of a ``multiprocessing`` process)."""
    # The server's signals are for the server: a Ctrl-C in a terminal reaches the whole
    # process group, and the pool ends this process by closing its input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings.log is not None:
        apply_log_config(settings.log)
    log_event(logger, logging.INFO, "transcoder_started", pid=os.getpid())
    ladders: dict[str, Ladder] = {}
    while True:
        try:
            message = inbox.recv()
        except EOFError:
            break
        kind, session = message[0], message[1]
        ladder = ladders.get(session)
        try:
            if kind == "start":
                _, _, target, profiles, source = message
                ladders[session] = Ladder(
                    target, profiles, settings.engine, source=source, clock=settings.clock
                )
                continue
            if kind == "feed":
                if ladder is not None and not ladder.finished:
                    _guarded(ladder, functools.partial(ladder.feed, message[2]))
                _send(outbox, ("report", session, *_state(ladder), message[3]))
            elif kind == "finish":
                ladders.pop(session, None)
                if ladder is not None:
                    _guarded(ladder, ladder.finish)
                _send(outbox, ("finished", session, *_state(ladder)))
        except (BrokenPipeError, EOFError):
            break
    for ladder in ladders.values():
        ladder.abort("the transcoder process was stopped")


def _guarded(ladder: Ladder, work: Callable[[], None]) -> None:
    """Run ``work``; if it raises, that session's renditions end (and only they)."""
    try:
        work()
    except Exception as exc:
        log_event(
            logger,
            logging.ERROR,
            "transcode_failed",
            session=ladder.target.session_id,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
        ladder.abort(f"{type(exc).__name__}: {exc}")


def _state(ladder: Ladder | None) -> tuple[RenditionsReport | None, list[RenditionSegment]]:
    if ladder is None:
        return None, []
    return ladder.report(), ladder.take_segments()


def _send(outbox: Connection, message: tuple[Any, ...]) -> None:
    outbox.send(message)
