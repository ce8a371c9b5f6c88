"""What every part of the store shares: the two connections and how they are used.

One writer connection and one reader connection, both in WAL mode. Every write goes through
the writer inside a short ``BEGIN IMMEDIATE`` transaction (or, for a write that is a single
statement, the statement alone, which autocommit makes a transaction) held under an
:class:`asyncio.Lock`, so the statements of one transaction are never interleaved with
another's and nothing stays open between calls: each method returns only after its
transaction committed. Reads use the reader connection and never wait for a write to
finish (WAL); a read that needs two queries (a page and its total) runs them in one
snapshot, and reads are serialized too, so a read made after a write always sees it.

A write that finds the database locked by another process waits up to the busy timeout
(:meth:`storage.Store.open`) and then fails; :func:`retryable` tells such faults, which a
later try may get past (locked or busy, disk full, I/O error), from errors a retry cannot
fix (a constraint violated, bad SQL, a corrupt file). Since only the writer's lock is held
while a write waits, reads go on meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import aiosqlite

#: The largest page a list method returns.
MAX_LIMIT: Final = 1000
#: The largest offset a list method takes (SQLite's largest integer).
MAX_OFFSET: Final = 2**63 - 1

#: Primary result codes of faults a later try may get past: SQLITE_BUSY, SQLITE_LOCKED,
#: SQLITE_NOMEM, SQLITE_READONLY (the file's permissions, a read-only mount), SQLITE_IOERR,
#: SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL.
_TRANSIENT_CODES: Final = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
#: The same faults by message, for an error that carries no result code.
_TRANSIENT_MESSAGES: Final = (
    "locked",
    "busy",
    "disk is full",
    "disk i/o error",
    "unable to open database file",
    "readonly database",
    "out of memory",
)


def retryable(exc: BaseException) -> bool:
    """Whether a write that failed with ``exc`` may succeed if tried again: the database
    was locked or busy, the disk full or failing, the file unwritable for now. A violated
    constraint, bad SQL, a corrupt database or a closed store are not: trying again would
    fail the same way."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in _TRANSIENT_CODES
    message = str(exc).lower()
    return any(text in message for text in _TRANSIENT_MESSAGES)


def check_page(offset: int, limit: int) -> None:
    if not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"offset must be between 0 and {MAX_OFFSET}, got {offset}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def where_sql(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def created_range(
    clauses: list[str], params: list[Any], since: float | None, until: float | None
) -> None:
    if since is not None:
        clauses.append("created_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("created_at < ?")
        params.append(until)


class StoreBase:
    """The connections, the locks, and the transaction helpers the query mixins use."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer: aiosqlite.Connection | None = writer
        self._reader: aiosqlite.Connection | None = reader
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer, inside a transaction that commits on exit and rolls back on error."""
        async with self._statement() as conn:
            # The connection's worker runs calls in order, so even when this task is
            # cancelled the ROLLBACK is queued behind the statement that was interrupted
            # (BEGIN included); rollback() is a no-op when no transaction is open.
            try:
                await conn.execute_fetchall("BEGIN IMMEDIATE")
                yield conn
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer, for one statement that is its own transaction (autocommit): no
        BEGIN or COMMIT round trips; the lock keeps it out of other transactions."""
        async with self._write_lock:
            conn = self._writer
            if conn is None:
                raise RuntimeError("the store is closed")
            yield conn

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[aiosqlite.Connection]:
        """The reader, inside a read transaction: every query sees the same database."""
        async with self._read_lock:
            conn = self._reader
            if conn is None:
                raise RuntimeError("the store is closed")
            try:
                await conn.execute_fetchall("BEGIN")
                yield conn
            finally:
                await conn.rollback()

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """One query on the reader."""
        async with self._read_lock:
            conn = self._reader
            if conn is None:
                raise RuntimeError("the store is closed")
            return list(await conn.execute_fetchall(sql, params))
