"""The owner of the live streams across processes (``[rtmp] processes`` above 1).

The main process runs the one :class:`~sessions.owner.StreamOwner`. A worker process's
session manager asks :class:`RemoteSessions` instead, which implements the same
:class:`~sessions.owner.Owner` interface by asking the main process over the channel; in
the main process, :class:`WorkerHolders` turns one worker's messages into calls on the
owner, and the owner acts on that worker's connections through :class:`RemoteHolder`.
The messages are those of :mod:`sessions.process_messages`. The worker keeps only its
connections (and their sessions' counters and segmenters); who holds which stream, and
how each session ends, is decided in the main process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Protocol

from ingest.hooks import Decision, PublishAttempt
from ingest.logs import log_event
from ingest.rtmp.events import EndCause
from sessions.owner import End, Holder, HolderKey, StreamOwner, end_for
from sessions.process_messages import (
    ChannelClosed,
    Claim,
    Close,
    Disconnected,
    Ended,
    Message,
    Opened,
    Release,
    RemoteError,
    Saved,
    Suspended,
    decision_from_wire,
    decision_to_wire,
    end_from_wire,
    end_to_wire,
)
from storage.models import EndReason, SessionRecord

logger = logging.getLogger("sessions.remote")

#: Seconds a worker waits for the owner's answer to a disconnect before it decides alone.
ANSWER_TIMEOUT = 10.0
#: The status a publisher gets when the main process went away while it was authorized.
_DENIED = "NetStream.Publish.Denied"


class Link(Protocol):
    """What both sides need of the channel between the processes."""

    def notify(self, message: Message) -> None:
        """Send a message that needs no answer (dropped once the channel is closed)."""
        ...

    async def request(self, message: Message) -> Any:
        """Send a request and wait for its answer (raises
        :class:`~sessions.process_messages.ChannelClosed` if the other side goes)."""
        ...


class RemoteSessions:
    """The owner, as a worker process's session manager asks it: every decision is the
    main process's. Should the main process go (the worker then stops), a publish that
    ends is ended as the owner last asked, or as its cause means (:func:`end_for`)."""

    def __init__(self, link: Link) -> None:
        self.link = link
        #: This worker's publishers the owner may act on, by connection.
        self._holders: dict[int, Holder] = {}
        #: The end the owner asked of each, until it is over.
        self._asked: dict[int, EndReason] = {}

    async def claim(self, attempt: PublishAttempt, holder: Holder) -> Decision:
        conn = attempt.connection_id
        self._holders[conn] = holder
        try:
            answer = await self.link.request(Claim(attempt))
        except asyncio.CancelledError:
            # The connection went while its key was being checked: give back what the
            # owner may have granted it.
            self.release(conn)
            raise
        except ChannelClosed:
            self._forget(conn)
            return Decision(False, _DENIED, "server shutting down")
        decision, continues = decision_from_wire(answer)
        if not decision.allowed:
            self._forget(conn)
            return decision
        if continues is not None:
            holder.resume(continues)
        return dataclasses.replace(decision, release=lambda: self.release(conn))

    def release(self, conn: int) -> None:
        self._forget(conn)
        self.link.notify(Release(conn))

    def opened(self, holder: Holder, record: SessionRecord) -> None:
        self.link.notify(Opened(holder.key.connection, record))

    def saved(self, records: list[SessionRecord]) -> None:
        self.link.notify(Saved(records))

    async def disconnected(self, holder: Holder, cause: EndCause, reason: str) -> End | None:
        conn = holder.key.connection
        asked = self._asked.get(conn)
        self._forget(conn)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                answer = await self.link.request(Disconnected(conn, cause, reason))
        except (ChannelClosed, RemoteError, TimeoutError) as exc:
            if not isinstance(exc, ChannelClosed):
                log_event(logger, logging.ERROR, "owner_unanswered", conn=conn, error=str(exc))
            return end_for(cause, reason, asked)
        return end_from_wire(answer)

    def suspended(self, record: SessionRecord) -> None:
        self.link.notify(Suspended(record))

    def closed(self, session_id: str) -> None:
        self.link.notify(Ended(session_id))

    def close(self, message: Close) -> None:
        """The owner ends one of this worker's publishers."""
        holder = self._holders.get(message.conn)
        if holder is not None:
            self._asked[message.conn] = message.reason
            holder.end(message.reason, message.why)

    def _forget(self, conn: int) -> None:
        self._holders.pop(conn, None)
        self._asked.pop(conn, None)


class RemoteHolder:
    """A worker's publisher, as the owner in the main process acts on it."""

    __slots__ = ("continues", "key", "link")

    def __init__(self, link: Link, key: HolderKey) -> None:
        self.link = link
        self.key = key
        #: The reconnecting session its claim continues (sent back with the answer).
        self.continues: SessionRecord | None = None

    def end(self, reason: EndReason, why: str) -> None:
        self.link.notify(Close(self.key.connection, reason, why))

    def refresh(self, now: float) -> None:
        """Nothing to do: the worker reports its counters at every flush."""

    def resume(self, record: SessionRecord) -> None:
        self.continues = record


class WorkerHolders:
    """One worker process's publishers, as the main process's owner sees them: its
    requests and reports become calls on the owner."""

    def __init__(self, owner: StreamOwner, link: Link, process: int) -> None:
        self.owner = owner
        self.link = link
        self.process = process

    def _holder(self, conn: int) -> RemoteHolder:
        return RemoteHolder(self.link, HolderKey(self.process, conn))

    async def request(self, message: Message) -> Any:
        """Answer one of the worker's requests."""
        if isinstance(message, Claim):
            holder = self._holder(message.attempt.connection_id)
            decision = await self.owner.claim(message.attempt, holder)
            return decision_to_wire(decision, holder.continues)
        if isinstance(message, Disconnected):
            holder = self._holder(message.conn)
            end = await self.owner.disconnected(holder, message.cause, message.reason)
            return end_to_wire(end)
        raise ValueError(f"not a request a worker makes: {message.op}")

    def notice(self, message: Message) -> bool:
        """Take one of the worker's reports; False if it is not one for the owner."""
        if isinstance(message, Release):
            self.owner.release(HolderKey(self.process, message.conn))
        elif isinstance(message, Opened):
            self.owner.opened(self._holder(message.conn), message.record)
        elif isinstance(message, Saved):
            self.owner.saved(message.records)
        elif isinstance(message, Suspended):
            self.owner.suspended(message.record)
        elif isinstance(message, Ended):
            self.owner.closed(message.session)
        else:
            return False
        return True

    def lost(self) -> list[str]:
        """The worker died: its streams are free again; returns the sessions it had, to
        be ended as ``server_restart``."""
        return self.owner.lost(self.process)
