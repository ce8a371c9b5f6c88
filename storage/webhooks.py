"""Webhooks: the endpoints, their deliveries (one per endpoint and event) and each attempt.

The events themselves are written by :mod:`storage.outbox`, with the change that caused
them. A delivery is ``pending`` until an attempt gets a 2xx (``delivered``) or the sender
gives up (``failed``); every attempt is a row (time, status code, latency, error).
Deleting a webhook removes it, its deliveries and their attempts, and the events no other
webhook still has a delivery of.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .base import StoreBase, check_page
from .models import SessionRecord
from .outbox import session_from_json

DeliveryState = Literal["pending", "delivered", "failed"]

_WEBHOOK_COLUMNS: Final = "id, url, events, description, secret, disabled, created_at, updated_at"
_PENDING_SELECT: Final = (
    "SELECT d.id, d.webhook_id, d.event_id, v.event, v.created_at, v.stream_id, v.session_id,"
    " v.data, v.body, d.attempts, d.next_attempt, d.created_at, v.session"
    " FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id"
)
_DELIVERY_SELECT: Final = (
    "SELECT d.id, d.webhook_id, d.event_id, v.event, d.state, d.attempts, d.next_attempt,"
    " d.created_at, d.updated_at, v.stream_id, v.session_id"
    " FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id"
)


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """An endpoint. ``secret`` signs its deliveries: left out of ``repr``, shown by the
    API only when made (create, rotate-secret)."""

    id: str
    url: str
    events: list[str]
    description: str
    secret: str = field(repr=False)
    disabled: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    at: float
    #: The receiver's HTTP status, None when no answer came (refused, timed out...).
    status_code: int | None
    #: Seconds from sending to the answer (or the error).
    latency: float
    error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    webhook_id: str
    event_id: str
    event: str
    state: DeliveryState
    attempts: int
    next_attempt: float
    created_at: float
    updated_at: float
    stream_id: str | None
    session_id: str | None
    attempt_log: list[AttemptRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A delivery to make, with its event."""

    id: int
    webhook_id: str
    event_id: str
    event: str
    event_at: float
    stream_id: str | None
    session_id: str | None
    data: dict[str, Any]
    #: The body as first sent (None before the first attempt).
    body: str | None
    attempts: int
    next_attempt: float
    created_at: float
    #: The session as it was when the event was written, if the event kept it.
    session: SessionRecord | None = None


def _webhook(row: sqlite3.Row) -> WebhookRecord:
    return WebhookRecord(
        id=row[0],
        url=row[1],
        events=list(json.loads(row[2])),
        description=row[3],
        secret=row[4],
        disabled=bool(row[5]),
        created_at=row[6],
        updated_at=row[7],
    )


def _pending(row: sqlite3.Row) -> PendingDelivery:
    return PendingDelivery(
        id=row[0],
        webhook_id=row[1],
        event_id=row[2],
        event=row[3],
        event_at=row[4],
        stream_id=row[5],
        session_id=row[6],
        data=dict(json.loads(row[7])),
        body=row[8],
        attempts=row[9],
        next_attempt=row[10],
        created_at=row[11],
        session=None if row[12] is None else session_from_json(row[12]),
    )


def _events_json(events: list[str]) -> str:
    return json.dumps(events, separators=(",", ":"))


class WebhookQueries(StoreBase):
    """Webhook endpoints and their deliveries."""

    async def create_webhook(
        self,
        *,
        id: str,
        url: str,
        events: list[str],
        description: str,
        secret: str,
        now: float,
        disabled: bool = False,
    ) -> WebhookRecord:
        record = WebhookRecord(id, url, list(events), description, secret, disabled, now, now)
        async with self._statement() as conn:
            await conn.execute_fetchall(
                f"INSERT INTO webhooks ({_WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (id, url, _events_json(events), description, secret, int(disabled), now, now),
            )
        return record

    async def get_webhook(self, webhook_id: str) -> WebhookRecord | None:
        rows = await self._fetch(
            f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,)
        )
        return _webhook(rows[0]) if rows else None

    async def list_webhooks(
        self, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[WebhookRecord], int]:
        """A page of webhooks, oldest first, and how many there are."""
        check_page(offset, limit)
        async with self._snapshot() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id LIMIT ? OFFSET ?",
                (limit, offset),
            )
            total = await conn.execute_fetchall("SELECT COUNT(*) FROM webhooks")
        return [_webhook(r) for r in rows], int(next(iter(total))[0])

    async def update_webhook(
        self,
        webhook_id: str,
        *,
        now: float,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        disabled: bool | None = None,
        secret: str | None = None,
    ) -> WebhookRecord | None:
        """Change the given fields (``None`` leaves one as it is); ``None`` if no such
        webhook."""
        async with self._transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,)
                )
            )
            if not rows:
                return None
            old = _webhook(rows[0])
            new = WebhookRecord(
                id=old.id,
                url=old.url if url is None else url,
                events=old.events if events is None else list(events),
                description=old.description if description is None else description,
                secret=old.secret if secret is None else secret,
                disabled=old.disabled if disabled is None else disabled,
                created_at=old.created_at,
                updated_at=now,
            )
            await conn.execute_fetchall(
                "UPDATE webhooks SET url = ?, events = ?, description = ?, secret = ?,"
                " disabled = ?, updated_at = ? WHERE id = ?",
                (
                    new.url,
                    _events_json(new.events),
                    new.description,
                    new.secret,
                    int(new.disabled),
                    now,
                    webhook_id,
                ),
            )
        return new

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Remove the webhook, its deliveries and their attempts, and the events left
        without a delivery. ``False`` if no such webhook."""
        async with self._transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    "DELETE FROM webhooks WHERE id = ? RETURNING id", (webhook_id,)
                )
            )
            if not rows:
                return False
            await conn.execute_fetchall(
                "DELETE FROM webhook_attempts WHERE delivery_id IN"
                " (SELECT id FROM webhook_deliveries WHERE webhook_id = ?)",
                (webhook_id,),
            )
            events = await conn.execute_fetchall(
                "DELETE FROM webhook_deliveries WHERE webhook_id = ? RETURNING event_id",
                (webhook_id,),
            )
            await conn.execute_fetchall(
                "DELETE FROM webhook_events WHERE id IN (SELECT value FROM json_each(?))"
                " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
                " WHERE d.event_id = webhook_events.id)",
                (json.dumps([row[0] for row in events]),),
            )
        return True

    # -- deliveries ---------------------------------------------------------------------

    async def webhooks_with_pending(self) -> list[str]:
        """The ids of the enabled webhooks that have deliveries pending."""
        rows = await self._fetch(
            "SELECT DISTINCT d.webhook_id FROM webhook_deliveries d"
            " JOIN webhooks w ON w.id = d.webhook_id"
            " WHERE d.state = 'pending' AND NOT w.disabled"
        )
        return [row[0] for row in rows]

    async def pending_deliveries(
        self, webhook_id: str, *, limit: int = 500
    ) -> list[PendingDelivery]:
        """The webhook's pending deliveries, oldest first (the order their events were
        written in)."""
        rows = await self._fetch(
            f"{_PENDING_SELECT} WHERE d.webhook_id = ? AND d.state = 'pending'"
            " ORDER BY d.id LIMIT ?",
            (webhook_id, limit),
        )
        return [_pending(r) for r in rows]

    async def delivery_heads(self, webhook_id: str) -> list[tuple[int, float]]:
        """``(delivery id, next attempt)`` of the oldest pending delivery of each stream
        (events about no stream count as one more), for the webhook: the only ones that
        may be sent, so that each stream's events arrive in order."""
        rows = await self._fetch(
            "SELECT MIN(d.id), d.next_attempt FROM webhook_deliveries d"
            " JOIN webhook_events v ON v.id = d.event_id"
            " WHERE d.webhook_id = ? AND d.state = 'pending' GROUP BY v.stream_id",
            (webhook_id,),
        )
        return [(int(row[0]), float(row[1])) for row in rows]

    async def get_deliveries(self, delivery_ids: list[int]) -> list[PendingDelivery]:
        """Those of ``delivery_ids`` still pending, with their events, oldest first."""
        rows = await self._fetch(
            f"{_PENDING_SELECT} WHERE d.id IN (SELECT value FROM json_each(?))"
            " AND d.state = 'pending' ORDER BY d.id",
            (json.dumps(delivery_ids),),
        )
        return [_pending(r) for r in rows]

    async def prune_deliveries(self, before: float) -> int:
        """Forget the deliveries settled (delivered or failed) before ``before``, their
        attempts, and the events left without a delivery; how many deliveries went."""
        async with self._transaction() as conn:
            await conn.execute_fetchall(
                "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM"
                " webhook_deliveries WHERE state != 'pending' AND updated_at < ?)",
                (before,),
            )
            gone = list(
                await conn.execute_fetchall(
                    "DELETE FROM webhook_deliveries WHERE state != 'pending' AND updated_at < ?"
                    " RETURNING event_id",
                    (before,),
                )
            )
            await conn.execute_fetchall(
                "DELETE FROM webhook_events WHERE id IN (SELECT value FROM json_each(?))"
                " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
                " WHERE d.event_id = webhook_events.id)",
                (json.dumps(sorted({row[0] for row in gone})),),
            )
        return len(gone)

    async def count_pending_deliveries(self) -> int:
        """Deliveries waiting to be sent, over every webhook (the queue's depth)."""
        rows = await self._fetch("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")
        return int(rows[0][0])

    async def set_event_body(self, event_id: str, body: str) -> str:
        """Keep ``body`` as the event's body unless it already has one; the body it has."""
        async with self._transaction() as conn:
            await conn.execute_fetchall(
                "UPDATE webhook_events SET body = ? WHERE id = ? AND body IS NULL",
                (body, event_id),
            )
            rows = list(
                await conn.execute_fetchall(
                    "SELECT body FROM webhook_events WHERE id = ?", (event_id,)
                )
            )
        return str(rows[0][0]) if rows and rows[0][0] is not None else body

    async def record_attempt(
        self,
        delivery_id: int,
        attempt: AttemptRecord,
        *,
        state: DeliveryState,
        next_attempt: float,
    ) -> None:
        """One attempt of a delivery, and the delivery's state after it (nothing if the
        delivery is gone: its webhook was deleted meanwhile)."""
        async with self._transaction() as conn:
            await conn.execute_fetchall(
                "INSERT INTO webhook_attempts (delivery_id, at, status_code, latency, error)"
                " SELECT ?1, ?2, ?3, ?4, ?5"
                " WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = ?1)",
                (delivery_id, attempt.at, attempt.status_code, attempt.latency, attempt.error),
            )
            await conn.execute_fetchall(
                "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1,"
                " next_attempt = ?, updated_at = ? WHERE id = ?",
                (state, next_attempt, attempt.at, delivery_id),
            )

    async def list_deliveries(
        self, webhook_id: str, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[DeliveryRecord], int]:
        """A page of the webhook's deliveries, newest first, each with its attempts
        (oldest first), and how many it has."""
        check_page(offset, limit)
        async with self._snapshot() as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"{_DELIVERY_SELECT} WHERE d.webhook_id = ? ORDER BY d.id DESC"
                    " LIMIT ? OFFSET ?",
                    (webhook_id, limit, offset),
                )
            )
            total = await conn.execute_fetchall(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,)
            )
            attempts: dict[int, list[AttemptRecord]] = {}
            if rows:
                found = await conn.execute_fetchall(
                    "SELECT delivery_id, at, status_code, latency, error FROM webhook_attempts"
                    " WHERE delivery_id IN (SELECT value FROM json_each(?)) ORDER BY id",
                    (json.dumps([row[0] for row in rows]),),
                )
                for a in found:
                    attempts.setdefault(a[0], []).append(AttemptRecord(a[1], a[2], a[3], a[4]))
        deliveries = [
            DeliveryRecord(
                id=r[0],
                webhook_id=r[1],
                event_id=r[2],
                event=r[3],
                state=r[4],
                attempts=r[5],
                next_attempt=r[6],
                created_at=r[7],
                updated_at=r[8],
                stream_id=r[9],
                session_id=r[10],
                attempt_log=attempts.get(r[0], []),
            )
            for r in rows
        ]
        return deliveries, int(next(iter(total))[0])
