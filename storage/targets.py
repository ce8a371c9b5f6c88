"""Multistream targets: each stream's destinations (name, URL, enabled or not).

A target belongs to one stream and is addressed through it (a target id of another
stream is not found). Deleting a target removes its row; a deleted stream's targets stay
with it, invisible (its sessions no longer start).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from .base import StoreBase, check_page
from .models import TargetRecord
from .rows import TARGET_COLUMNS, column_list, target_from_row

_TARGET_SELECT: Final = f"SELECT {column_list(TARGET_COLUMNS)} FROM targets"


class TargetQueries(StoreBase):
    """Target rows, always through their stream."""

    async def create_target(
        self, *, id: str, stream_id: str, name: str, url: str, disabled: bool, now: float
    ) -> TargetRecord | None:
        """A new target of ``stream_id``; ``None`` if there is no such stream."""
        target = TargetRecord(id, stream_id, name, url, disabled, now, now)
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT 1 FROM streams WHERE id = ? AND deleted_at IS NULL", (stream_id,)
            )
            if not list(rows):
                return None
            await conn.execute_fetchall(
                f"INSERT INTO targets ({column_list(TARGET_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (id, stream_id, name, url, int(disabled), now, now),
            )
        return target

    async def get_target(self, stream_id: str, target_id: str) -> TargetRecord | None:
        rows = await self._fetch(
            f"{_TARGET_SELECT} WHERE id = ? AND stream_id = ?", (target_id, stream_id)
        )
        return target_from_row(rows[0]) if rows else None

    async def list_targets(
        self, stream_id: str, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[TargetRecord], int]:
        """A page of the stream's targets, oldest first, and how many it has."""
        check_page(offset, limit)
        async with self._snapshot() as conn:
            rows = await conn.execute_fetchall(
                f"{_TARGET_SELECT} WHERE stream_id = ? ORDER BY created_at, id LIMIT ? OFFSET ?",
                (stream_id, limit, offset),
            )
            total = await conn.execute_fetchall(
                "SELECT COUNT(*) FROM targets WHERE stream_id = ?", (stream_id,)
            )
        return [target_from_row(r) for r in rows], int(next(iter(total))[0])

    async def enabled_targets(self, stream_id: str) -> list[TargetRecord]:
        """Where a new session of the stream is forwarded."""
        rows = await self._fetch(
            f"{_TARGET_SELECT} WHERE stream_id = ? AND NOT disabled ORDER BY created_at, id",
            (stream_id,),
        )
        return [target_from_row(r) for r in rows]

    async def update_target(
        self,
        stream_id: str,
        target_id: str,
        *,
        now: float,
        name: str | None = None,
        url: str | None = None,
        disabled: bool | None = None,
    ) -> TargetRecord | None:
        """Change the given fields (``None`` leaves one as it is); ``None`` if no such
        target."""
        async with self._transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"{_TARGET_SELECT} WHERE id = ? AND stream_id = ?", (target_id, stream_id)
                )
            )
            if not rows:
                return None
            target = target_from_row(rows[0])
            target = replace(
                target,
                name=target.name if name is None else name,
                url=target.url if url is None else url,
                disabled=target.disabled if disabled is None else disabled,
                updated_at=now,
            )
            await conn.execute_fetchall(
                "UPDATE targets SET name = ?, url = ?, disabled = ?, updated_at = ? WHERE id = ?",
                (target.name, target.url, int(target.disabled), now, target_id),
            )
        return target

    async def delete_target(self, stream_id: str, target_id: str) -> bool:
        async with self._statement() as conn:
            rows = await conn.execute_fetchall(
                "DELETE FROM targets WHERE id = ? AND stream_id = ? RETURNING id",
                (target_id, stream_id),
            )
        return bool(list(rows))
