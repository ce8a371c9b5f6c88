"""Structured logs, one line per event, for journald or a terminal.

Text lines are ``key=value`` pairs (``ts=... level=info logger=ingest.server event=...``);
JSON lines are one object each. Fields come from ``extra={"fields": {...}}``, which
:func:`log_event` fills in; a plain ``logger.info("message")`` logs the message as the event.

``[log] level`` is the level of the program's own loggers (:data:`OWN_LOGGERS`). The
libraries' (aiosqlite's statements, uvicorn, asyncio, httpx, ...) stay at info or above
even at ``debug``, so that their chatter does not bury the server's own lines; the
loggers named in ``[log] debug_loggers`` (and their children) log at debug whatever the
level.
"""

import json
import logging
import math
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TextIO

from ingest.config import LogConfig

__all__ = [
    "OWN_LOGGERS",
    "EventFormatter",
    "apply_log_config",
    "configure_logging",
    "log_event",
    "percentiles_ms",
]

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")
#: The program's packages, whose loggers log at the configured level; every other logger
#: logs at that level or info, whichever is higher.
OWN_LOGGERS = ("ingest", "sessions", "storage")
#: The least severe level a library logger writes unless named in ``debug_loggers``.
LIBRARY_LEVEL = logging.INFO

_RESERVED = ("ts", "level", "logger", "event")
_NEEDS_QUOTES = re.compile(r'[\s"=\\\x00-\x1f\x7f]')
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TO_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f\x85\u2028\u2029]')


def _escape(char: re.Match[str]) -> str:
    c = char.group()
    return _ESCAPES.get(c) or f"\\u{ord(c):04x}"


def _text_value(value: object) -> str:
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + _TO_ESCAPE.sub(_escape, text) + '"'


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class EventFormatter(logging.Formatter):
    """Formats every record as one line, ``text`` (key=value) or ``json``."""

    def __init__(self, fmt: str = "text", *, tracebacks: bool = False) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        super().__init__()
        self.fmt = fmt
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        items: dict[str, object] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                name = str(key)
                items[f"{name}_" if name in _RESERVED else name] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            items["exc"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.tracebacks:
                items["traceback"] = self.formatException(record.exc_info)
        if self.fmt == "json":
            return json.dumps({k: _json_value(v) for k, v in items.items()}, default=str)
        return " ".join(
            f"{_BAD_KEY_CHARS.sub('_', key) or '_'}={_text_value(value)}"
            for key, value in items.items()
        )


class _EventHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` installs (so it can find and replace it)."""


def configure_logging(
    level: str = "info",
    fmt: str = "text",
    stream: TextIO | None = None,
    *,
    debug_loggers: Iterable[str] = (),
) -> None:
    """Send every log record to *stream* (stderr by default), one line each.

    *level* applies to :data:`OWN_LOGGERS`; other loggers write at *level* or info,
    whichever is higher, except *debug_loggers*, which write at debug. Calling it again
    replaces the handler and the levels an earlier call set. Tracebacks are added
    (escaped, on the same line) only at ``debug`` level.
    """
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    handler = _EventHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(EventFormatter(fmt, tracebacks=level == "debug"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _EventHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(max(LEVELS[level], LIBRARY_LEVEL))
    levels = dict.fromkeys(OWN_LOGGERS, LEVELS[level])
    levels.update(dict.fromkeys(debug_loggers, logging.DEBUG))
    for name in _levels_set.difference(levels):
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)
    _levels_set.clear()
    _levels_set.update(levels)


#: The loggers whose level :func:`configure_logging` set last (reset by the next call).
_levels_set: set[str] = set()


def apply_log_config(log: LogConfig, stream: TextIO | None = None) -> None:
    """:func:`configure_logging` as the ``[log]`` section says."""
    configure_logging(log.level, log.format, stream, debug_loggers=log.debug_logger_names)


def log_event(logger: logging.Logger, level: int, event: str, /, **fields: object) -> None:
    """Log *event* with *fields* as key=value pairs (``exc_info=True`` adds the exception)."""
    if logger.isEnabledFor(level):
        exc = fields.pop("exc_info", None)
        exc_info = exc if isinstance(exc, BaseException) else bool(exc)
        logger.log(level, event, exc_info=exc_info, extra={"fields": fields}, stacklevel=2)


def percentiles_ms(samples: Iterable[float]) -> dict[str, float] | None:
    """p50, p99 and max of durations in seconds, as milliseconds (None if empty): the
    figures the status reports and log lines give for lags and delays."""
    ordered = sorted(samples)
    if not ordered:
        return None
    return {
        "p50": round(ordered[len(ordered) // 2] * 1000, 2),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }
