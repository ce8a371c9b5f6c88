"""One owner of "which connection is publishing which key".

:class:`LivePublishers` sits between the listener and the real authorizer and handler: it
applies the duplicate-publish policy and releases a key the moment its publisher ends.
With ``replace`` (the default) a new publisher on a live key ends the old one, so a
half-open connection left by a crashed or roaming encoder never locks the encoder out;
with ``reject`` the newcomer gets ``NetStream.Publish.BadName`` while the key is live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from ingest.hooks import (
    Decision,
    PublishAttempt,
    PublishAuthorizer,
    PublisherControl,
    PublishHandler,
    StreamSink,
)
from ingest.logs import log_event

logger = logging.getLogger("sessions.publishers")

DuplicatePolicy = Literal["replace", "reject"]
#: Why a replaced publisher's connection was closed.
REPLACED_REASON = "replaced by a new publisher on the same key"


def _slot(attempt: PublishAttempt, decision: Decision) -> tuple[str, str]:
    """What one publisher at a time may own: the stream, or the app and key if the
    authorizer named no stream."""
    if decision.stream_id is not None:
        return ("", decision.stream_id)
    return (attempt.app, attempt.key)


class _Live:
    __slots__ = ("attempt", "control")

    def __init__(self, attempt: PublishAttempt, control: PublisherControl) -> None:
        self.attempt = attempt
        self.control = control


class LivePublishers:
    """An authorizer and publish handler that keeps at most one publisher per key."""

    def __init__(
        self,
        authorizer: PublishAuthorizer,
        handler: PublishHandler,
        policy: DuplicatePolicy = "replace",
    ) -> None:
        self.authorizer = authorizer
        self.handler = handler
        self.policy: DuplicatePolicy = policy
        self._live: dict[tuple[str, str], _Live] = {}

    def __len__(self) -> int:
        return len(self._live)

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        decision = await self.authorizer.authorize(attempt)
        if decision.allowed and self.policy == "reject" and _slot(attempt, decision) in self._live:
            return Decision(False, "NetStream.Publish.BadName", "stream is already live")
        return decision

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        slot = _slot(attempt, decision)
        old = self._live.get(slot)
        if old is not None:
            log_event(
                logger,
                logging.INFO,
                "publisher_replaced",
                old_conn=old.attempt.connection_id,
                old_remote=old.attempt.remote_addr,
                conn=attempt.connection_id,
                remote=attempt.remote_addr,
            )
            old.control.close(REPLACED_REASON)
            # Closing ends the old publish at once, which released the slot.
            self._live.pop(slot, None)
        live = _Live(attempt, control)
        self._live[slot] = live
        inner = self.handler.started(attempt, control, decision)
        return ReleasingSink(inner, lambda: self._release(slot, live))

    def _release(self, slot: tuple[str, str], live: _Live) -> None:
        if self._live.get(slot) is live:
            del self._live[slot]


class ReleasingSink:
    """Passes everything on (media at no extra cost), and frees the key when the publish
    ends: ``release`` runs first, then the inner sink's ``ended``."""

    __slots__ = ("_inner", "_release", "media", "metadata")

    def __init__(self, inner: StreamSink, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release = release
        self.media = inner.media
        self.metadata = inner.metadata

    def ended(self, cause: str, reason: str, bytes_received: int) -> None:
        self._release()
        self._inner.ended(cause, reason, bytes_received)
