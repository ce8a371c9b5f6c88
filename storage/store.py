"""The SQLite store: streams, their multistream targets, the session ledger, segments and
the event log.

:class:`Store` puts together the stream queries (:mod:`storage.streams`) and the session
ledger (:mod:`storage.ledger`) over the connections of :mod:`storage.base`, and adds opening,
closing, segments and the event log.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import aiosqlite

from .ledger import LedgerQueries
from .outbox import OutboxEvent, write_outbox
from .rows import SEGMENT_COLUMNS, column_list, segment_from_row
from .schema import migrate
from .streams import StreamNameTaken, StreamQueries
from .targets import TargetQueries
from .webhooks import WebhookQueries

__all__ = ["BUSY_TIMEOUT", "Store", "StreamNameTaken"]

#: Seconds a statement waits for another process's lock before it fails (the default).
BUSY_TIMEOUT: Final = 5.0


class Store(StreamQueries, LedgerQueries, TargetQueries, WebhookQueries):
    """Persistence for the whole server. Open with :meth:`open`; :meth:`close` when done."""

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, busy_timeout: float = BUSY_TIMEOUT
    ) -> Store:
        """Open (creating it and its directory if needed) and migrate the database. A
        statement that finds the database locked by another process waits up to
        ``busy_timeout`` seconds, then fails (see :func:`storage.retryable`)."""
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0, got {busy_timeout}")
        if sqlite3.sqlite_version_info < (3, 35, 0):
            raise RuntimeError(f"SQLite >= 3.35 is required, found {sqlite3.sqlite_version}")
        db_path = Path(path)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(db_path, busy_timeout)
        reader: aiosqlite.Connection | None = None
        try:
            rows = list(await writer.execute_fetchall("PRAGMA journal_mode = WAL"))
            if str(rows[0][0]).lower() != "wal":
                raise RuntimeError(f"cannot use WAL journal mode for {db_path}: {rows[0][0]}")
            await writer.execute_fetchall("PRAGMA synchronous = NORMAL")
            await migrate(writer)
            reader = await _connect(db_path, busy_timeout)
            await reader.execute_fetchall("PRAGMA query_only = ON")
        except BaseException:
            if reader is not None:
                await reader.close()
            await writer.close()
            raise
        return cls(db_path, writer, reader)

    async def close(self) -> None:
        """Close both connections (waits for a write in progress). Safe to call twice."""
        async with self._write_lock, self._read_lock:
            reader, writer = self._reader, self._writer
            self._reader = self._writer = None
            if reader is not None:
                await reader.close()
            if writer is not None:
                await writer.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"``, or SQLite's list of problems."""
        rows = await self._fetch("PRAGMA integrity_check")
        return "\n".join(str(row[0]) for row in rows)

    # -- segments -------------------------------------------------------------------------

    async def add_segment(
        self,
        session_id: str,
        *,
        sequence: int,
        uri: str,
        duration: float,
        bytes: int,
        first_timestamp: float,
        keyframe_start: bool,
        discontinuity: bool,
        now: float,
    ) -> None:
        """Record one segment. Safe to repeat (a write that is retried): a repeated
        ``(session_id, sequence)`` leaves the row already there. One statement, so one trip
        to the writer's thread (in autocommit mode a statement is a transaction of its
        own)."""
        async with self._statement() as conn:
            await conn.execute_fetchall(
                "INSERT INTO segments (session_id, sequence, uri, duration, bytes,"
                " first_timestamp, keyframe_start, discontinuity, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id, sequence) DO NOTHING",
                (
                    session_id,
                    sequence,
                    uri,
                    duration,
                    bytes,
                    first_timestamp,
                    int(keyframe_start),
                    int(discontinuity),
                    now,
                ),
            )

    async def list_segments(self, session_id: str) -> list[dict[str, Any]]:
        """The session's segments in sequence order, one dict per segment."""
        rows = await self._fetch(
            f"SELECT {column_list(SEGMENT_COLUMNS)} FROM segments"
            " WHERE session_id = ? ORDER BY sequence",
            (session_id,),
        )
        return [segment_from_row(r) for r in rows]

    # -- event log ------------------------------------------------------------------------

    async def log_event(
        self,
        kind: str,
        *,
        at: float,
        stream_id: str | None = None,
        session_id: str | None = None,
        remote_addr: str | None = None,
        reason: str | None = None,
        outbox: Sequence[OutboxEvent] = (),
    ) -> None:
        """One event-log row, and the webhook events of ``outbox`` in the same
        transaction."""
        sql = (
            "INSERT INTO events (at, kind, stream_id, session_id, remote_addr, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        params = (at, kind, stream_id, session_id, remote_addr, reason)
        if outbox:
            async with self._transaction() as conn:
                await conn.execute_fetchall(sql, params)
                await write_outbox(conn, outbox)
            return
        async with self._statement() as conn:
            await conn.execute_fetchall(sql, params)


async def _connect(path: Path, busy_timeout: float) -> aiosqlite.Connection:
    """A connection in autocommit mode (transactions are explicit) with rows by name."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute_fetchall(f"PRAGMA busy_timeout = {round(busy_timeout * 1000):d}")
        await conn.execute_fetchall("PRAGMA foreign_keys = ON")
    except BaseException:
        await conn.close()
        raise
    return conn
