"""The webhook outbox: events written in the same transaction as the change that caused them.

A write of the ledger, a stream or the event log may carry :class:`OutboxEvent` items; they
are inserted by :func:`write_outbox` on the connection of that write's transaction, so the
change and the news of it land together or not at all (a crash between "session ended" and
"webhook sent" loses nothing). An event no enabled webhook subscribes to is not kept; one
that is gets a pending delivery per such webhook, in the same transaction. Both inserts
are safe to repeat (a retried write): an event id already there is left as it is.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import aiosqlite

from .models import SessionRecord

_INSERT_EVENT: Final = (
    "INSERT INTO webhook_events (id, event, created_at, stream_id, session_id, data, session)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS"
    " (SELECT 1 FROM webhooks w, json_each(w.events) e WHERE NOT w.disabled AND e.value = ?2)"
    " ON CONFLICT (id) DO NOTHING"
)
_INSERT_DELIVERIES: Final = (
    "INSERT INTO webhook_deliveries (webhook_id, event_id, state, attempts, next_attempt,"
    " created_at, updated_at)"
    " SELECT w.id, ?1, 'pending', 0, ?3, ?3, ?3 FROM webhooks w WHERE NOT w.disabled"
    " AND EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = ?2)"
    " AND EXISTS (SELECT 1 FROM webhook_events v WHERE v.id = ?1)"
    " ORDER BY w.created_at, w.id ON CONFLICT (webhook_id, event_id) DO NOTHING"
)


def session_to_json(session: SessionRecord) -> str:
    return json.dumps(dataclasses.asdict(session), separators=(",", ":"))


def session_from_json(text: str) -> SessionRecord:
    return SessionRecord(**json.loads(text))


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event for the webhooks: its name (``stream.started``...), when it happened, the
    stream and session it is about, and any extra fields for its body (``data``: a
    refusal's reason...). ``id`` is what receivers de-duplicate on. ``session``, when
    given, is kept as it is when the event is written (the body shows the session as it
    was then: live for ``stream.started``, even if it is sent after the session ended)."""

    event: str
    at: float
    stream_id: str | None = None
    session_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_event_id)
    session: SessionRecord | None = field(default=None, compare=False, repr=False)


async def write_outbox(conn: aiosqlite.Connection, events: Iterable[OutboxEvent]) -> None:
    """Insert ``events`` (and their deliveries) on ``conn``, inside the caller's
    transaction."""
    for item in events:
        data = json.dumps(item.data, separators=(",", ":"))
        session = None if item.session is None else session_to_json(item.session)
        await conn.execute_fetchall(
            _INSERT_EVENT,
            (item.id, item.event, item.at, item.stream_id, item.session_id, data, session),
        )
        await conn.execute_fetchall(_INSERT_DELIVERIES, (item.id, item.event, item.at))
