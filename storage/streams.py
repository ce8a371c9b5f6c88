"""Streams: created, renamed, disabled, re-keyed and soft-deleted.

A deleted stream keeps its row (its sessions stay in the ledger and point at it) but is
invisible to every stream method; its name is free again and its ``key_hash`` is replaced by
``"deleted:" + id``, which no hash of a key can equal, so its old key never matches again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Final

import aiosqlite

from .base import StoreBase, check_page
from .models import StreamRecord
from .outbox import OutboxEvent, write_outbox
from .rows import STREAM_COLUMNS, column_list, stream_from_row

_STREAM_SELECT: Final = f"SELECT {column_list(STREAM_COLUMNS)} FROM streams"


class StreamNameTaken(ValueError):
    """Another (non-deleted) stream already has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"stream name already in use: {name!r}")
        self.name = name


class StreamQueries(StoreBase):
    """Stream rows (deleted ones are invisible here)."""

    async def create_stream(
        self,
        *,
        id: str,
        name: str,
        key_hash: str,
        playback_id: str,
        record: bool = False,
        profiles: list[dict[str, Any]] | None = None,
        now: float,
        outbox: Sequence[OutboxEvent] = (),
    ) -> StreamRecord:
        stream = StreamRecord(
            id=id,
            name=name,
            key_hash=key_hash,
            playback_id=playback_id,
            disabled=False,
            record=record,
            created_at=now,
            updated_at=now,
            profiles=list(profiles or []),
        )
        async with self._transaction() as conn:
            await _check_name_free(conn, name)
            await conn.execute_fetchall(
                "INSERT INTO streams (id, name, key_hash, playback_id, disabled, record,"
                " created_at, updated_at, profiles) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (id, name, key_hash, playback_id, int(record), now, now, _json(stream.profiles)),
            )
            await write_outbox(conn, outbox)
        return stream

    async def get_stream(self, stream_id: str) -> StreamRecord | None:
        rows = await self._fetch(
            f"{_STREAM_SELECT} WHERE id = ? AND deleted_at IS NULL", (stream_id,)
        )
        return stream_from_row(rows[0]) if rows else None

    async def enabled_streams(self, stream_ids: Iterable[str]) -> set[str]:
        """Those of ``stream_ids`` that exist, are not deleted and are not disabled (one
        query for many streams)."""
        rows = await self._fetch(
            "SELECT id FROM streams WHERE id IN (SELECT value FROM json_each(?))"
            " AND deleted_at IS NULL AND NOT disabled",
            (json.dumps(list(stream_ids)),),
        )
        return {row[0] for row in rows}

    async def playback_ids(self, stream_ids: Iterable[str]) -> dict[str, str]:
        """``{stream id: playback_id}`` for those of ``stream_ids`` that exist, deleted
        streams included (their sessions' media is still filed under it)."""
        rows = await self._fetch(
            "SELECT id, playback_id FROM streams WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(stream_ids)),),
        )
        return {row[0]: row[1] for row in rows}

    async def get_stream_by_name(self, name: str) -> StreamRecord | None:
        rows = await self._fetch(f"{_STREAM_SELECT} WHERE name = ? AND deleted_at IS NULL", (name,))
        return stream_from_row(rows[0]) if rows else None

    async def get_stream_by_playback_id(self, playback_id: str) -> StreamRecord | None:
        rows = await self._fetch(
            f"{_STREAM_SELECT} WHERE playback_id = ? AND deleted_at IS NULL", (playback_id,)
        )
        return stream_from_row(rows[0]) if rows else None

    async def find_stream_by_key_hash(self, key_hash: str) -> StreamRecord | None:
        rows = await self._fetch(
            f"{_STREAM_SELECT} WHERE key_hash = ? AND deleted_at IS NULL", (key_hash,)
        )
        return stream_from_row(rows[0]) if rows else None

    async def list_streams(
        self, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[StreamRecord], int]:
        """A page of streams, oldest first, and how many there are in all."""
        check_page(offset, limit)
        async with self._snapshot() as conn:
            rows = await conn.execute_fetchall(
                f"{_STREAM_SELECT} WHERE deleted_at IS NULL"
                " ORDER BY created_at, id LIMIT ? OFFSET ?",
                (limit, offset),
            )
            total = await conn.execute_fetchall(
                "SELECT COUNT(*) FROM streams WHERE deleted_at IS NULL"
            )
        return [stream_from_row(r) for r in rows], int(next(iter(total))[0])

    async def update_stream(
        self,
        stream_id: str,
        *,
        now: float,
        name: str | None = None,
        disabled: bool | None = None,
        record: bool | None = None,
        key_hash: str | None = None,
        profiles: list[dict[str, Any]] | None = None,
    ) -> StreamRecord | None:
        """Change the given fields (``None`` leaves one as it is); ``None`` if no such
        stream. Raises :class:`StreamNameTaken` if another stream has ``name``."""
        async with self._transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"{_STREAM_SELECT} WHERE id = ? AND deleted_at IS NULL", (stream_id,)
                )
            )
            if not rows:
                return None
            stream = stream_from_row(rows[0])
            if name is not None and name != stream.name:
                await _check_name_free(conn, name)
            stream = replace(
                stream,
                name=stream.name if name is None else name,
                disabled=stream.disabled if disabled is None else disabled,
                record=stream.record if record is None else record,
                key_hash=stream.key_hash if key_hash is None else key_hash,
                profiles=stream.profiles if profiles is None else list(profiles),
                updated_at=now,
            )
            await conn.execute_fetchall(
                "UPDATE streams SET name = ?, disabled = ?, record = ?, key_hash = ?,"
                " profiles = ?, updated_at = ? WHERE id = ?",
                (
                    stream.name,
                    int(stream.disabled),
                    int(stream.record),
                    stream.key_hash,
                    _json(stream.profiles),
                    now,
                    stream_id,
                ),
            )
        return stream

    async def delete_stream(
        self, stream_id: str, *, now: float, outbox: Sequence[OutboxEvent] = ()
    ) -> bool:
        """Soft-delete: the stream disappears, its name is free again, its key can never
        match again, and its sessions stay in the ledger. ``False`` if no such stream.
        The webhook events of ``outbox`` are written with it (not if there was none)."""
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "UPDATE streams SET deleted_at = ?1, updated_at = ?1,"
                " key_hash = 'deleted:' || id"
                " WHERE id = ?2 AND deleted_at IS NULL RETURNING id",
                (now, stream_id),
            )
            deleted = bool(list(rows))
            if deleted:
                await write_outbox(conn, outbox)
        return deleted

    async def get_stream_any(self, stream_id: str) -> StreamRecord | None:
        """A stream by id, deleted ones included (what a webhook about it shows)."""
        rows = await self._fetch(f"{_STREAM_SELECT} WHERE id = ?", (stream_id,))
        return stream_from_row(rows[0]) if rows else None


def _json(profiles: list[dict[str, Any]]) -> str:
    return json.dumps(profiles, separators=(",", ":"))


async def _check_name_free(conn: aiosqlite.Connection, name: str) -> None:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM streams WHERE name = ? AND deleted_at IS NULL LIMIT 1", (name,)
    )
    if list(rows):
        raise StreamNameTaken(name)
