"""The session ledger: sessions are inserted once, flushed in batches, and never deleted."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from .base import StoreBase, check_page, created_range, where_sql
from .models import Analytics, EndReason, SessionRecord, SessionStatus
from .outbox import OutboxEvent, write_outbox
from .rows import (
    SESSION_COLUMNS,
    SESSION_FLUSH_COLUMNS,
    column_list,
    session_flush_params,
    session_from_row,
    session_insert_params,
)

_SESSION_SELECT: Final = f"SELECT {column_list(SESSION_COLUMNS)} FROM sessions"
_SESSION_INSERT: Final = (
    f"INSERT INTO sessions ({column_list(SESSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in SESSION_COLUMNS)}) ON CONFLICT (id) DO NOTHING"
)
_SESSION_FLUSH: Final = (
    f"UPDATE sessions SET {', '.join(f'{c} = ?' for c in SESSION_FLUSH_COLUMNS)} WHERE id = ?"
)
_STREAM_BUMP_LAST_SEEN: Final = (
    "UPDATE streams SET last_seen = ?1 WHERE id = ?2 AND (last_seen IS NULL OR last_seen < ?1)"
)


class LedgerQueries(StoreBase):
    """Sessions, their analytics and viewer time."""

    async def insert_session(
        self, session: SessionRecord, *, outbox: Sequence[OutboxEvent] = ()
    ) -> None:
        """Insert a new session's row (and the webhook events of ``outbox``, in the same
        transaction); safe to repeat (a retried write): a session already there is left as
        it is."""
        if outbox:
            async with self._transaction() as conn:
                await conn.execute_fetchall(_SESSION_INSERT, session_insert_params(session))
                await write_outbox(conn, outbox)
            return
        async with self._statement() as conn:
            await conn.execute_fetchall(_SESSION_INSERT, session_insert_params(session))

    async def save_sessions(
        self, sessions: Sequence[SessionRecord], *, outbox: Sequence[OutboxEvent] = ()
    ) -> None:
        """Flush the in-memory state of many sessions in one transaction (with the webhook
        events of ``outbox``).

        Rewrites every column except the fixed ones (``id``, ``stream_id``, ``created_at``)
        and ``viewer_seconds`` (see :meth:`add_viewer_seconds`); sessions not in the store
        are skipped. Each stream's ``last_seen`` moves forward to its newest session's.
        """
        if not sessions:
            return
        params = [session_flush_params(s) for s in sessions]
        newest: dict[str, float] = {}
        for s in sessions:
            if s.last_seen > newest.get(s.stream_id, float("-inf")):
                newest[s.stream_id] = s.last_seen
        async with self._transaction() as conn:
            await conn.executemany(_SESSION_FLUSH, params)
            await conn.executemany(_STREAM_BUMP_LAST_SEEN, [(t, sid) for sid, t in newest.items()])
            await write_outbox(conn, outbox)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._fetch(f"{_SESSION_SELECT} WHERE id = ?", (session_id,))
        return session_from_row(rows[0]) if rows else None

    async def list_sessions(
        self,
        *,
        stream_id: str | None = None,
        status: SessionStatus | None = None,
        since: float | None = None,
        until: float | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[SessionRecord], int]:
        """A page of sessions, newest first, and how many match the filter in all.
        ``since`` is inclusive and ``until`` exclusive, both on ``created_at``."""
        check_page(offset, limit)
        clauses: list[str] = []
        params: list[Any] = []
        if stream_id is not None:
            clauses.append("stream_id = ?")
            params.append(stream_id)
        if status == "reconnecting":
            clauses.append("status = 'live' AND reconnecting = 1")
        elif status == "live":
            clauses.append("status = 'live' AND reconnecting = 0")
        elif status is not None:
            clauses.append("status = ?")
            params.append(status)
        created_range(clauses, params, since, until)
        where = where_sql(clauses)
        async with self._snapshot() as conn:
            rows = await conn.execute_fetchall(
                f"{_SESSION_SELECT}{where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            total = await conn.execute_fetchall(f"SELECT COUNT(*) FROM sessions{where}", params)
        return [session_from_row(r) for r in rows], int(next(iter(total))[0])

    async def get_sessions(self, session_ids: Iterable[str]) -> list[SessionRecord]:
        """Those of ``session_ids`` that are in the ledger (one query for many), in no
        particular order."""
        rows = await self._fetch(
            f"{_SESSION_SELECT} WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(session_ids)),),
        )
        return [session_from_row(r) for r in rows]

    async def sessions_awaiting_recording(self) -> list[SessionRecord]:
        """Ended sessions whose recording is still ``waiting``: their MP4 was never
        finished (the server died before or while making it). Oldest first."""
        rows = await self._fetch(
            f"{_SESSION_SELECT} WHERE status = 'ended' AND recording_status = 'waiting'"
            " ORDER BY created_at, id"
        )
        return [session_from_row(r) for r in rows]

    async def active_session(self, stream_id: str) -> SessionRecord | None:
        """The stream's newest live (or reconnecting) session, if it has one."""
        rows = await self._fetch(
            f"{_SESSION_SELECT} WHERE stream_id = ? AND status = 'live'"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (stream_id,),
        )
        return session_from_row(rows[0]) if rows else None

    async def close_open_sessions(
        self,
        *,
        reason: EndReason,
        now: float,
        ids: Sequence[str] | None = None,
        event: str | None = None,
    ) -> list[SessionRecord]:
        """End every session still live or reconnecting (start-up after a crash), or only
        those of ``ids`` that are (a worker process died). A session ends at its last
        flushed ``last_seen``, not at ``now``; returns them, oldest first. With ``event``,
        each one ended is also a webhook event of that name, in the same transaction."""
        only, params = "", [reason, now]
        if ids is not None:
            only = " AND id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(ids)))
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "UPDATE sessions SET status = 'ended', end_reason = ?, ended_at = last_seen,"
                " duration = last_seen - created_at, ingest_rate = 0, updated_at = ?,"
                " reconnecting = 0"
                f" WHERE status = 'live'{only} RETURNING {column_list(SESSION_COLUMNS)}",
                params,
            )
            closed = [session_from_row(r) for r in rows]
            if event is not None:
                await write_outbox(
                    conn,
                    [OutboxEvent(event, now, s.stream_id, s.id, session=s) for s in closed],
                )
        closed.sort(key=lambda s: (s.created_at, s.id))
        return closed

    async def analytics(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        stream_id: str | None = None,
    ) -> Analytics:
        """Totals over the sessions created in ``[since, until)`` (of one stream, or all)."""
        clauses: list[str] = []
        params: list[Any] = []
        if stream_id is not None:
            clauses.append("stream_id = ?")
            params.append(stream_id)
        created_range(clauses, params, since, until)
        rows = await self._fetch(
            "SELECT COUNT(*), TOTAL(ingest_seconds), COALESCE(SUM(bytes_received), 0),"
            " TOTAL(viewer_seconds), TOTAL(transcoded_segments_duration)"
            f" FROM sessions{where_sql(clauses)}",
            params,
        )
        count, ingest_seconds, total_bytes, viewer_seconds, transcoded = rows[0]
        return Analytics(
            count=int(count),
            total_ingest_seconds=float(ingest_seconds),
            total_bytes=int(total_bytes),
            total_viewer_seconds=float(viewer_seconds),
            total_transcoded_seconds=float(transcoded),
        )

    async def add_viewer_seconds(self, session_id: str, seconds: float) -> None:
        """Add to the session's viewer seconds: one statement, which SQLite applies whole
        or not at all, so a failed one may be tried again."""
        if seconds < 0:
            raise ValueError(f"viewer seconds must be >= 0, got {seconds}")
        async with self._statement() as conn:
            await conn.execute_fetchall(
                "UPDATE sessions SET viewer_seconds = viewer_seconds + ? WHERE id = ?",
                (seconds, session_id),
            )
