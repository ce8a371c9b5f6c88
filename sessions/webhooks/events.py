"""The webhook events, by name (Livepeer-style), and the outbox items that carry them."""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Any, Final

from storage import OutboxEvent, SessionRecord


class WebhookEvent(StrEnum):
    #: A session opened.
    STREAM_STARTED = "stream.started"
    #: The session ended; the body carries the final session.
    STREAM_IDLE = "stream.idle"
    #: The publisher dropped and the session waits for it (the reconnect window).
    SESSION_RECONNECTING = "session.reconnecting"
    #: The publisher came back within the window.
    SESSION_RESUMED = "session.resumed"
    RECORDING_READY = "recording.ready"
    RECORDING_FAILED = "recording.failed"
    #: The session's ``is_healthy`` changed (with its issues).
    STREAM_HEALTH = "stream.health"
    STREAM_CREATED = "stream.created"
    STREAM_DELETED = "stream.deleted"
    #: A publish was refused (noisy: not among the default events).
    PUBLISH_REJECTED = "publish.rejected"
    #: A multistream target of a live session went live, failed an attempt or lost its
    #: connection, or was let go (``data.target``: its id, name, status and why).
    MULTISTREAM_CONNECTED = "multistream.connected"
    MULTISTREAM_ERROR = "multistream.error"
    MULTISTREAM_DISCONNECTED = "multistream.disconnected"


ALL_EVENTS: Final = tuple(e.value for e in WebhookEvent)
#: What a webhook created without a list of events gets.
DEFAULT_EVENTS: Final = tuple(e for e in ALL_EVENTS if e != WebhookEvent.PUBLISH_REJECTED)


def session_event(
    event: WebhookEvent, record: SessionRecord, at: float, **data: Any
) -> OutboxEvent:
    """An outbox item about a session (its stream too), with a copy of the session as it is
    now (the body shows it so, however late the write lands or the delivery goes), and
    ``data`` for the body's ``data``."""
    snapshot = copy.deepcopy(record)
    return OutboxEvent(event.value, at, record.stream_id, record.id, dict(data), session=snapshot)


def stream_event(event: WebhookEvent, stream_id: str | None, at: float, **data: Any) -> OutboxEvent:
    """An outbox item about a stream (or, without one, about a publish)."""
    return OutboxEvent(event.value, at, stream_id, None, dict(data))
