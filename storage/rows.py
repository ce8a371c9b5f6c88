"""Mapping between the dataclasses of :mod:`storage.models` and SQLite rows.

SQLite has no boolean or list types: booleans are stored as 0/1 and the list-of-dict fields
(``tracks``, ``issues``, ``multistream``, ``profiles``, ``renditions``) as compact JSON
text. Everything else is stored as it is, so a :class:`SessionRecord` comes back equal to
the one that went in, field types included.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any, Final

from .models import EndReason, EventRecord, SessionRecord, StreamRecord, TargetRecord

#: Every column of ``sessions``: the dataclass fields in their order, then
#: ``reconnecting`` (a reconnecting session is stored as ``status = 'live'`` with
#: ``reconnecting = 1``: the status column's CHECK knows only 'live' and 'ended').
SESSION_COLUMNS: Final = (*(f.name for f in fields(SessionRecord)), "reconnecting")

#: Columns fixed when a session opens; a flush never rewrites them.
SESSION_FIXED_COLUMNS: Final = frozenset({"id", "stream_id", "created_at"})

#: ``viewer_seconds`` is accumulated by the store itself (``Store.add_viewer_seconds``), so a
#: flush of the in-memory counters must not overwrite it.
SESSION_FLUSH_COLUMNS: Final = tuple(
    c for c in SESSION_COLUMNS if c not in SESSION_FIXED_COLUMNS and c != "viewer_seconds"
)

_BOOL_COLUMNS: Final = frozenset({"is_healthy", "record", "reconnecting"})
_JSON_COLUMNS: Final = frozenset(
    {"tracks", "issues", "multistream", "profiles", "renditions", "gaps"}
)

#: ``streams`` columns that make a :class:`StreamRecord` (``deleted_at`` stays internal).
STREAM_COLUMNS: Final = tuple(f.name for f in fields(StreamRecord))

EVENT_COLUMNS: Final = tuple(f.name for f in fields(EventRecord))

TARGET_COLUMNS: Final = tuple(f.name for f in fields(TargetRecord))

SEGMENT_COLUMNS: Final = (
    "id",
    "session_id",
    "sequence",
    "uri",
    "duration",
    "bytes",
    "first_timestamp",
    "keyframe_start",
    "discontinuity",
    "created_at",
)
_SEGMENT_BOOL_COLUMNS: Final = frozenset({"keyframe_start", "discontinuity"})


def column_list(columns: Sequence[str]) -> str:
    return ", ".join(columns)


#: One encoder made once: ``json.dumps`` with arguments builds a new encoder per call, and a
#: flush encodes two lists for every live session every second.
_encode_json: Final = json.JSONEncoder(separators=(",", ":")).encode


def _dump_json(value: Any) -> str:
    return _encode_json(value) if value else "[]"


def _encoder(columns: Sequence[str]) -> Callable[[SessionRecord], list[Any]]:
    """A fast ``SessionRecord -> parameter list`` for the given columns (one attrgetter call,
    then only the few columns that need converting are touched)."""
    get = attrgetter(*columns)
    json_at = [i for i, c in enumerate(columns) if c in _JSON_COLUMNS]
    bool_at = [i for i, c in enumerate(columns) if c in _BOOL_COLUMNS]
    status_at = columns.index("status") if "status" in columns else None

    def encode(session: SessionRecord) -> list[Any]:
        values = list(get(session))
        for i in json_at:
            values[i] = _dump_json(values[i])
        for i in bool_at:
            values[i] = 1 if values[i] else 0
        if status_at is not None and values[status_at] == "reconnecting":
            values[status_at] = "live"
        return values

    return encode


_encode_all = _encoder(SESSION_COLUMNS)
_encode_flush = _encoder(SESSION_FLUSH_COLUMNS)


def session_insert_params(session: SessionRecord) -> list[Any]:
    """Parameters for ``INSERT INTO sessions (SESSION_COLUMNS) VALUES (...)``."""
    return _encode_all(session)


def session_flush_params(session: SessionRecord) -> list[Any]:
    """Parameters for ``UPDATE sessions SET <SESSION_FLUSH_COLUMNS> = ? ... WHERE id = ?``."""
    values = _encode_flush(session)
    values.append(session.id)
    return values


def session_from_row(row: sqlite3.Row) -> SessionRecord:
    """A row selected with ``SESSION_COLUMNS`` (in that order) back to a record."""
    values = list(row)
    for i, column in enumerate(SESSION_COLUMNS):
        if column in _JSON_COLUMNS:
            values[i] = json.loads(values[i])
        elif column in _BOOL_COLUMNS:
            values[i] = bool(values[i])
        elif column == "end_reason" and values[i] is not None:
            values[i] = EndReason(values[i])
    reconnecting = values.pop()
    record = SessionRecord(*values)
    if reconnecting and record.status == "live":
        record.status = "reconnecting"
    return record


def stream_from_row(row: sqlite3.Row) -> StreamRecord:
    """A row selected with ``STREAM_COLUMNS`` back to a record."""
    return StreamRecord(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        playback_id=row["playback_id"],
        disabled=bool(row["disabled"]),
        record=bool(row["record"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_seen=row["last_seen"],
        profiles=json.loads(row["profiles"]),
    )


def target_from_row(row: sqlite3.Row) -> TargetRecord:
    """A row selected with ``TARGET_COLUMNS`` back to a record."""
    return TargetRecord(
        id=row["id"],
        stream_id=row["stream_id"],
        name=row["name"],
        url=row["url"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def event_from_row(row: sqlite3.Row) -> EventRecord:
    return EventRecord(*row)


def segment_from_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        column: bool(row[column]) if column in _SEGMENT_BOOL_COLUMNS else row[column]
        for column in SEGMENT_COLUMNS
    }
