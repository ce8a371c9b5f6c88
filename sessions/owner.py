"""The one owner of live streams: who publishes on each, its open session, and its end.

Who decides what
----------------
While someone publishes on a stream, the stream has one :class:`LiveStream` here, and
only it decides:

* **who publishes**: :meth:`StreamOwner.claim` checks the key (the authorizer: keys,
  throttling, the event log) and grants the stream to the publisher's connection: a
  :class:`Lease` naming its :class:`Holder`. With ``duplicate_publish = "replace"`` a
  second publisher's claim takes the lease and the first holder is told to end (its
  session ends as ``replaced``); with ``"reject"`` the newcomer is refused while the
  stream is held.
* **the open session**: the holder reports the session it opened on its first media
  message (:meth:`~StreamOwner.opened`) and its counters at every flush
  (:meth:`~StreamOwner.saved`). The API's live view, a kick and a disabled key are
  answered from here (:meth:`~StreamOwner.live_sessions`, :meth:`~StreamOwner.kick`,
  :meth:`~StreamOwner.end_stream`, :meth:`~StreamOwner.check_streams`).
* **the end**: a session ends only as the owner says. The owner ends a holder by asking
  it to close its connection (:meth:`Holder.end`: replaced, kicked, key disabled,
  shutdown); every publish that is over, asked to or not, is reported
  (:meth:`~StreamOwner.disconnected`) and the owner answers with its :class:`End`: the
  reason it asked for, or else what the way it ended means (:func:`end_for`). A holder
  process that dies has its sessions ended as ``server_restart``
  (:meth:`~StreamOwner.lost`).

The holder keeps the connection and the session's working state: counters, segmenter,
the store writes, and the work of ending it once told how (closing the playlists,
writing the end, making the recording): :class:`~sessions.manager.SessionManager`. Media
never reaches the owner; the bytes stay in the process that read them.

Across processes
----------------
With one process the session manager asks the :class:`StreamOwner` directly: :class:`Owner`
is the interface it asks. With ``[rtmp] processes`` above 1, the main process runs the
one :class:`StreamOwner`, and each worker's session manager asks a
:class:`~sessions.remote.RemoteSessions`, which implements :class:`Owner` over the
channel to the main process (a claim and a disconnect are requests that wait for the
owner's answer; the reports are notices). In the main process a
:class:`~sessions.remote.WorkerHolders` turns one worker's messages into calls here, and
the owner acts on that worker's connections through
:class:`~sessions.remote.RemoteHolder`. A :class:`HolderKey` (process, connection) names
a holder, so a lease says which process and which connection hold a stream; the
workers keep no copy of who holds what, only their own connections.

The reconnect window
--------------------
The stream's session belongs to the :class:`LiveStream`, not to the lease:
``LiveStream.session`` may outlive ``LiveStream.lease``. With ``[sessions]
reconnect_window`` above 0:

* in :meth:`~StreamOwner.disconnected`: when the owner asked for no end and the
  connection dropped (:data:`DROPS`: closed or reset by the peer, idle timeout, protocol
  error; not ``unpublished``, not closed locally), the owner keeps ``stream.session``,
  frees the lease, sets ``expires = clock() + window`` and answers ``None`` ("keep it
  open") instead of an :class:`End`. The stream and its session are then
  ``reconnecting``. The holder finishes its part of the media (the segment it was
  cutting, the playlist without ``#EXT-X-ENDLIST``), writes the counters (not an end)
  and reports the record as it left it (:meth:`~StreamOwner.suspended`);
* in :meth:`~StreamOwner.claim`: a claim on a ``reconnecting`` stream waits for that
  report, takes the lease and hands the session's record to the new holder
  (:meth:`Holder.resume`; over the channel, in the claim's answer). Its publish
  continues that record (same id, counters carried on, one more ``reconnects``, a gap)
  and its segmenter continues the session's folder (media sequence from the playlist
  on disk, ``#EXT-X-DISCONTINUITY`` first). The worker that takes the reconnect need not
  be the one that had it: what it needs is in the record and on disk;
* expiry: the periodic :meth:`~StreamOwner.check_streams` (clock injected) ends the
  sessions whose window passed, with the end their connection's drop meant, through
  ``expire`` (the session manager of the process the owner runs in closes the
  playlists, writes the end at the last packet and makes the recording). A kick, a
  disabled key and shutdown end a reconnecting session the same way, at once. A
  holder that reconnected and dropped again before its first media message leaves the
  session reconnecting (a new window); one that ended otherwise ends it.

A PostgreSQL lease later
------------------------
A :class:`Lease` is (stream, holder, granted_at): one process grants it today, the main
process for its workers; with several ingest nodes sharing one PostgreSQL store it
becomes a row (``leases``: stream id, node, connection, expires). :meth:`~StreamOwner.claim`
then takes the row in a transaction (``SELECT ... FOR UPDATE`` of the stream, or an
advisory lock on it) and tells the node holding the old lease to end it with
``NOTIFY`` (that node ``LISTEN``\\s and calls :meth:`Holder.end`); a node renews its
leases at every flush, and the owner of any node ends the sessions of leases that
lapsed (a dead node) as it does for a dead worker today. :class:`HolderKey` gains the
node. The interfaces the holders use (:class:`Owner`, :class:`Holder`) stay as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple, Protocol

from ingest.hooks import Decision, PublishAttempt, PublishAuthorizer
from ingest.logs import log_event
from ingest.rtmp.events import EndCause
from storage.models import EndReason, SessionRecord

logger = logging.getLogger("sessions.owner")

#: Seconds a kick or a disabled key waits for the session's end to reach the store.
END_SAVE_TIMEOUT = 10.0
#: Why a replaced publisher's connection was closed.
REPLACED_REASON = "replaced by a new publisher on the same key"
#: The status a newcomer gets while its stream is held and the policy is ``reject``.
ALREADY_LIVE = "NetStream.Publish.BadName"
#: Seconds a claim on a reconnecting stream waits for the holder before it to report the
#: session as it left it (its last segment and counters written).
SUSPEND_TIMEOUT = 10.0


class StreamState(StrEnum):
    """Where a live stream (and its open session) is."""

    #: A publisher holds it (its session, once opened, is ``live``).
    LIVE = "live"
    #: Its publisher's connection dropped; the reconnect window is open.
    RECONNECTING = "reconnecting"


class DuplicatePolicy(StrEnum):
    """What a second publisher on a held stream gets (``[sessions] duplicate_publish``)."""

    #: The newcomer takes the stream; the one before it is ended as ``replaced``.
    REPLACE = "replace"
    #: The newcomer is refused (``NetStream.Publish.BadName``) while the stream is held.
    REJECT = "reject"


class HolderKey(NamedTuple):
    """Names a holder: a connection of a process (0: the process the owner runs in; a
    worker process: its index + 1)."""

    process: int
    connection: int


class Holder(Protocol):
    """A publisher's connection as the owner acts on it: in this process (the session
    manager's publish) or in a worker process (:class:`~sessions.remote.RemoteHolder`)."""

    @property
    def key(self) -> HolderKey: ...

    def end(self, reason: EndReason, why: str) -> None:
        """Close the connection (now, or as soon as its publish starts); its session is to
        end as ``reason`` (``why`` is for the log). The end is reported as any other:
        :meth:`Owner.disconnected`."""
        ...

    def refresh(self, now: float) -> None:
        """Bring the session record's counters up to ``now`` (a holder in another process
        reports them at every flush instead)."""
        ...

    def resume(self, record: SessionRecord) -> None:
        """The claim continues a reconnecting session: its publish is to continue
        ``record`` (with its first media message) instead of opening a new one."""
        ...


@dataclass(frozen=True, slots=True)
class End:
    """How a session ends: its end reason, and the peer's error after a protocol error."""

    reason: EndReason
    error: str | None = None


#: The ends of a publish that keep its session for the reconnect window: the connection
#: dropped without the encoder saying it stopped.
DROPS = frozenset({EndCause.CLOSED_BY_PEER, EndCause.IDLE_TIMEOUT, EndCause.PROTOCOL_ERROR})

#: What a publish that ended by itself means for its session.
_ENDS = {
    EndCause.UNPUBLISHED: EndReason.UNPUBLISHED,
    EndCause.CLOSED_BY_PEER: EndReason.DISCONNECTED,
    EndCause.IDLE_TIMEOUT: EndReason.TIMEOUT,
    EndCause.PROTOCOL_ERROR: EndReason.DISCONNECTED,
    EndCause.HANDSHAKE_TIMEOUT: EndReason.DISCONNECTED,
    EndCause.PUBLISH_TIMEOUT: EndReason.DISCONNECTED,
    EndCause.REJECTED: EndReason.DISCONNECTED,
    EndCause.CLOSED_LOCALLY: EndReason.SHUTDOWN,
}


def end_for(cause: EndCause, reason: str, asked: EndReason | None = None) -> End:
    """The end of a publish that is over: the end the owner asked for, else what its
    cause means; a protocol error's ``reason`` becomes the session's ``err_message``."""
    return End(asked or _ENDS[cause], reason if cause is EndCause.PROTOCOL_ERROR else None)


class Owner(Protocol):
    """What a process that holds publishers' connections asks of the owner of the live
    streams: the :class:`StreamOwner` where it runs, a
    :class:`~sessions.remote.RemoteSessions` in a worker process."""

    async def claim(self, attempt: PublishAttempt, holder: Holder) -> Decision:
        """Check the key and, if the publish may start, grant its stream to ``holder``
        (the holder before it is ended as ``replaced``, or the newcomer refused, as
        ``duplicate_publish`` says). An accepted decision names the stream
        (``stream_id``, ``stream_name`` filled in) and its ``release`` gives the stream
        back if the publish never starts."""
        ...

    def opened(self, holder: Holder, record: SessionRecord) -> None:
        """``holder``'s publish opened its session (its first media message)."""
        ...

    def saved(self, records: list[SessionRecord]) -> None:
        """The holders' live sessions, with their counters, at a flush."""
        ...

    async def disconnected(self, holder: Holder, cause: EndCause, reason: str) -> End | None:
        """``holder``'s publish is over (``cause``, ``reason``: as the listener said): its
        stream is free again; the answer is how its session (if it opened one) ends, or
        None: the session stays open for the reconnect window (the holder finishes its
        part and reports it with :meth:`suspended`)."""
        ...

    def suspended(self, record: SessionRecord) -> None:
        """The session the owner kept open is as its last holder left it (its counters
        in the store, its last segment listed)."""
        ...

    def closed(self, session_id: str) -> None:
        """The session's end is in the store."""
        ...


@dataclass(eq=False)
class Lease:
    """Who holds a stream: one publisher's connection, granted by the owner."""

    stream: LiveStream
    holder: Holder
    #: The publisher's address (for the log line when it is replaced).
    remote_addr: str
    granted_at: float
    #: The session this holder opened (the stream's, until the lease is taken over).
    session: SessionRecord | None = None
    #: The end the owner asked for (replaced, kicked, key disabled, shutdown), if any.
    asked: EndReason | None = None
    #: Whether ``session`` is a reconnecting one the claim handed over (until the holder
    #: opens it with its first media message).
    resumed: bool = False
    #: Set once the holder's publish is over (reported, released, or its process died).
    gone: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class LiveStream:
    """One stream while someone publishes on it."""

    stream_id: str
    #: Whether the stream is a row in the store (one that can be disabled or deleted).
    stored: bool
    #: Who holds it now.
    lease: Lease | None = None
    #: Its open session (opened by the holder's first media message).
    session: SessionRecord | None = None
    #: The stream's playback id (its media folder), as the last claim's decision said.
    playback_id: str | None = None
    #: While ``reconnecting``: when the window closes (clock seconds).
    expires: float | None = None
    #: While ``reconnecting``: the end its drop means, should the window pass.
    dropped: End | None = None
    #: While ``reconnecting``: set once the holder that dropped it reported the session
    #: as it left it (:meth:`StreamOwner.suspended`), and the process it was in.
    suspended: asyncio.Event = field(default_factory=asyncio.Event)
    suspending_in: int = 0
    #: While ``reconnecting`` and not yet suspended: the end asked meanwhile (shutdown, a
    #: disabled key).
    ending: End | None = None

    @property
    def state(self) -> StreamState:
        return StreamState.LIVE if self.lease is not None else StreamState.RECONNECTING


class StreamOwner:
    """The owner of every live stream of this server (see the module's docstring), and the
    live view the API reads (:class:`sessions.http.deps.LiveSessions`)."""

    def __init__(
        self,
        authorizer: PublishAuthorizer,
        *,
        policy: DuplicatePolicy = DuplicatePolicy.REPLACE,
        enabled_streams: Callable[[Iterable[str]], Awaitable[set[str]]] | None = None,
        check_interval: float = 1.0,
        reconnect_window: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authorizer = authorizer
        #: Seconds a dropped publisher's session waits for it (``[sessions]
        #: reconnect_window``); 0: it ends at once.
        self.reconnect_window = reconnect_window
        #: Ends a session no holder has (a reconnect window that passed, or a kick, a
        #: disabled key, shutdown while reconnecting): the session manager of this process
        #: (it writes the end, then reports :meth:`closed`). Set by whoever builds both.
        #: It is given the session, its end and the stream's playback id.
        self.expire: Callable[[SessionRecord, End, str | None], None] | None = None
        self.policy = policy
        #: Which of some stored streams are still enabled (the store's answer).
        self.enabled_streams = enabled_streams
        #: Seconds between the checks for streams disabled behind the owner's back.
        self.check_interval = check_interval
        self.clock = clock
        #: Epoch seconds the server started (for uptime).
        self.started_at = clock()
        self._streams: dict[str, LiveStream] = {}
        #: Every lease whose holder has not reported its publish over (taken over ones too).
        self._leases: dict[HolderKey, Lease] = {}
        #: Claims being authorized, and whether their publish went meanwhile.
        self._claiming: dict[HolderKey, bool] = {}
        #: The open sessions, by id.
        self._sessions: dict[str, LiveStream] = {}
        #: Sessions whose end is decided and not yet in the store: the process that
        #: has them, and what is set once it is.
        self._closing: dict[str, tuple[int, asyncio.Event]] = {}
        self._checker: asyncio.Task[None] | None = None

    # -- claims -------------------------------------------------------------------------

    async def claim(self, attempt: PublishAttempt, holder: Holder) -> Decision:
        key = holder.key
        self._claiming[key] = False
        try:
            decision = await self.authorizer.authorize(attempt)
            if decision.allowed:
                await self._wait_suspended(decision.stream_id or attempt.key)
        finally:
            abandoned = self._claiming.pop(key, True)
        if not decision.allowed or abandoned:
            return decision
        stream_id = decision.stream_id or attempt.key
        stream = self._streams.get(stream_id)
        old: Lease | None = None
        resumed: SessionRecord | None = None
        if stream is None:
            stream = LiveStream(stream_id, stored=decision.stream_id is not None)
            self._streams[stream_id] = stream
        elif stream.lease is not None:
            if self.policy == DuplicatePolicy.REJECT:
                return Decision(False, ALREADY_LIVE, "stream is already live")
            old = stream.lease
            log_event(
                logger,
                logging.INFO,
                "publisher_replaced",
                old_conn=old.holder.key.connection,
                old_remote=old.remote_addr,
                conn=attempt.connection_id,
                remote=attempt.remote_addr,
            )
            self._detach(old)
            self._streams[stream_id] = stream
        else:
            # Reconnecting: the newcomer continues the session.
            resumed = stream.session
            stream.expires = stream.ending = None
        lease = Lease(stream, holder, attempt.remote_addr, self.clock())
        stream.lease = lease
        stream.playback_id = decision.playback_id
        self._leases[key] = lease
        if resumed is not None:
            lease.session = resumed
            lease.resumed = True
            holder.resume(resumed)
            log_event(
                logger,
                logging.INFO,
                "publisher_reconnected",
                session=resumed.id,
                stream=stream_id,
                conn=attempt.connection_id,
                remote=attempt.remote_addr,
            )
        if old is not None:
            self._ask_end(old, EndReason.REPLACED, REPLACED_REASON)
        return replace(
            decision,
            stream_id=stream_id,
            stream_name=decision.stream_name or stream_id,
            release=lambda: self.release(key),
        )

    async def _wait_suspended(self, stream_id: str) -> None:
        """A claim on a reconnecting stream waits until the holder that dropped it has
        left the session as it continues (its last segment listed, its counters told)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.lease is not None or stream.suspended.is_set():
            return
        try:
            async with asyncio.timeout(SUSPEND_TIMEOUT):
                await stream.suspended.wait()
        except TimeoutError:
            log_event(logger, logging.WARNING, "session_not_suspended", stream=stream_id)

    def release(self, key: HolderKey) -> None:
        """The publish ``key`` claimed never started (its connection went while it was
        being authorized, or before it began): its stream is free again (a reconnecting
        session it was to continue waits again, for a new window)."""
        if key in self._claiming:
            self._claiming[key] = True
            return
        lease = self._leases.pop(key, None)
        if lease is not None:
            stream = lease.stream
            if lease.resumed and lease.session is not None and stream.lease is lease:
                self._keep(lease, stream.dropped or End(EndReason.DISCONNECTED))
            else:
                self._detach(lease)
            lease.gone.set()

    def _detach(self, lease: Lease) -> None:
        """``lease`` no longer holds its stream; neither does its session (the reconnect
        window keeps the session instead: :meth:`_keep`)."""
        stream = lease.stream
        if stream.lease is not lease:
            return
        stream.lease = None
        if stream.session is not None:
            self._sessions.pop(stream.session.id, None)
            stream.session = None
        if self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]

    def _keep(self, lease: Lease, end: End) -> None:
        """``lease``'s connection dropped: its session waits for a reconnect, and ends as
        ``end`` if none comes within the window."""
        stream = lease.stream
        session = lease.session
        assert session is not None and stream.lease is lease
        stream.lease = None
        stream.session = session
        self._sessions[session.id] = stream
        stream.expires = self.clock() + self.reconnect_window
        stream.dropped = end
        stream.ending = None
        stream.suspended = asyncio.Event()
        stream.suspending_in = lease.holder.key.process
        if lease.resumed:
            # It never sent media: the session is as the holder before it left it.
            stream.suspended.set()
        log_event(
            logger,
            logging.INFO,
            "reconnect_window_opened",
            session=session.id,
            stream=stream.stream_id,
            seconds=self.reconnect_window,
        )

    def _ask_end(self, lease: Lease, reason: EndReason, why: str) -> None:
        lease.asked = reason
        lease.holder.end(reason, why)

    # -- what holders report ------------------------------------------------------------

    def opened(self, holder: Holder, record: SessionRecord) -> None:
        lease = self._leases.get(holder.key)
        if lease is None:
            return
        lease.session = record
        lease.resumed = False
        stream = lease.stream
        if stream.lease is lease:
            stream.session = record
            stream.dropped = None
            self._sessions[record.id] = stream

    def saved(self, records: list[SessionRecord]) -> None:
        for record in records:
            stream = self._sessions.get(record.id)
            if stream is not None and stream.lease is not None and not stream.lease.resumed:
                stream.session = stream.lease.session = record

    async def disconnected(self, holder: Holder, cause: EndCause, reason: str) -> End | None:
        lease = self._leases.pop(holder.key, None)
        if lease is None:
            return end_for(cause, reason)
        end = end_for(cause, reason, lease.asked)
        session = lease.session
        if (
            lease.asked is None
            and cause in DROPS
            and self.reconnect_window > 0
            and session is not None
            and lease.stream.lease is lease
        ):
            self._keep(lease, end)
            lease.gone.set()
            return None
        self._detach(lease)
        if session is not None:
            if lease.resumed:
                # Handed over and never opened by this holder: no one else ends it.
                self._end_unheld(session, end, lease.stream.playback_id)
            else:
                self._closing[session.id] = (holder.key.process, asyncio.Event())
        lease.gone.set()
        return end

    def suspended(self, record: SessionRecord) -> None:
        stream = self._sessions.get(record.id)
        if stream is None or stream.lease is not None:
            return
        stream.session = record
        stream.suspended.set()
        if stream.ending is not None:
            self._close_window(stream, stream.ending)

    def closed(self, session_id: str) -> None:
        closing = self._closing.pop(session_id, None)
        if closing is not None:
            closing[1].set()

    def lost(self, process: int) -> list[str]:
        """Process ``process`` died with its connections: their streams are free again,
        and the sessions it had (open, reconnecting and not yet left as they continue, or
        ended but not yet stored) are to be ended as ``server_restart`` by the caller;
        returns their ids."""
        orphans: list[str] = []
        for key in self._claiming:
            if key.process == process:
                self._claiming[key] = True
        for key, lease in list(self._leases.items()):
            if key.process == process:
                del self._leases[key]
                self._detach(lease)
                if lease.session is not None:
                    orphans.append(lease.session.id)
                lease.gone.set()
        for stream in list(self._streams.values()):
            if (
                stream.lease is None
                and stream.session is not None
                and stream.suspending_in == process
                and not stream.suspended.is_set()
            ):
                orphans.append(stream.session.id)
                self._forget(stream)
        for session_id, (owner, done) in list(self._closing.items()):
            if owner == process:
                del self._closing[session_id]
                orphans.append(session_id)
                done.set()
        return orphans

    # -- ending sessions ----------------------------------------------------------------

    async def kick(self, session_id: str) -> bool:
        """End a live or reconnecting session as ``kicked``, and return once its end is in
        the store; False if it is neither."""
        stream = self._sessions.get(session_id)
        if stream is None:
            return False
        if stream.lease is None:
            await self._end_reconnecting(stream, EndReason.KICKED)
            return True
        await self._end_and_wait(stream.lease, EndReason.KICKED, "kicked by an operator")
        return True

    async def end_stream(self, stream_id: str, reason: EndReason = EndReason.KEY_DISABLED) -> bool:
        """End the stream's publish (its key was disabled or the stream deleted), or its
        reconnecting session, and return once its session's end (if it had one) is in the
        store; False if no one publishes on it."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return False
        if stream.lease is None:
            await self._end_reconnecting(stream, reason)
            return True
        await self._end_and_wait(stream.lease, reason, f"stream {reason.replace('_', ' ')}")
        return True

    def end_all(self, reason: EndReason, why: str) -> None:
        """Ask every holder to end, and end every reconnecting session (the server is
        stopping); does not wait."""
        for stream in list(self._streams.values()):
            if stream.lease is not None:
                self._ask_end(stream.lease, reason, why)
            elif stream.suspended.is_set():
                self._close_window(stream, End(reason))
            else:
                stream.ending = End(reason)

    async def _end_and_wait(self, lease: Lease, reason: EndReason, why: str) -> None:
        self._ask_end(lease, reason, why)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(END_SAVE_TIMEOUT):
                await lease.gone.wait()
                if lease.session is not None:
                    closing = self._closing.get(lease.session.id)
                    if closing is not None:
                        await closing[1].wait()

    async def _end_reconnecting(self, stream: LiveStream, reason: EndReason) -> None:
        """End a reconnecting stream's session as ``reason`` now, once its last holder left
        it as it is; return once the end is in the store."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(END_SAVE_TIMEOUT):
                await stream.suspended.wait()
                if stream.lease is not None or stream.session is None:
                    return  # it was reconnected meanwhile, or ended
                done = self._close_window(stream, End(reason))
                await done.wait()

    def _close_window(self, stream: LiveStream, end: End) -> asyncio.Event:
        """End the session of a reconnecting stream (no holder has it) as ``end``."""
        session = stream.session
        assert session is not None
        self._forget(stream)
        return self._end_unheld(session, end, stream.playback_id)

    def _forget(self, stream: LiveStream) -> None:
        if stream.session is not None:
            self._sessions.pop(stream.session.id, None)
            stream.session = None
        stream.expires = stream.dropped = stream.ending = None
        if self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]

    def _end_unheld(
        self, record: SessionRecord, end: End, playback_id: str | None
    ) -> asyncio.Event:
        """Have this process's session manager end a session no holder has; the event is
        set once the end is in the store."""
        done = asyncio.Event()
        self._closing[record.id] = (0, done)
        log_event(
            logger,
            logging.INFO,
            "reconnect_window_closed",
            session=record.id,
            stream=record.stream_id,
            end_reason=end.reason,
        )
        if self.expire is None:
            log_event(logger, logging.ERROR, "session_not_ended", session=record.id)
            self._closing.pop(record.id, None)
            done.set()
        else:
            self.expire(record, end, playback_id)
        return done

    async def check_streams(self) -> None:
        """End the sessions whose reconnect window passed, and the publishes of stored
        streams that were disabled or deleted behind the owner's back (by the command
        line: the API tells :meth:`end_stream` at once)."""
        self.expire_windows()
        if self.enabled_streams is None:
            return
        held = [
            (stream, stream.lease, stream.session)
            for stream in self._streams.values()
            if stream.stored and (stream.lease is not None or stream.session is not None)
        ]
        if not held:
            return
        enabled = await self.enabled_streams(stream.stream_id for stream, _, _ in held)
        for stream, lease, session in held:
            if stream.stream_id in enabled:
                continue
            if lease is not None:
                if stream.lease is lease:
                    self._ask_end(lease, EndReason.KEY_DISABLED, "stream disabled")
            elif (
                stream.lease is None
                and stream.session is session
                and self._streams.get(stream.stream_id) is stream
            ):
                if stream.suspended.is_set():
                    self._close_window(stream, End(EndReason.KEY_DISABLED))
                else:
                    stream.ending = End(EndReason.KEY_DISABLED)

    def expire_windows(self) -> None:
        """End, as their drop meant, the reconnecting sessions whose window passed."""
        now = self.clock()
        for stream in list(self._streams.values()):
            if (
                stream.lease is None
                and stream.expires is not None
                and stream.expires <= now
                and stream.dropped is not None
                and stream.suspended.is_set()
            ):
                self._close_window(stream, stream.dropped)

    def start(self) -> None:
        """Check for disabled streams and passed windows every ``check_interval``
        seconds, until :meth:`close`."""
        self._checker = asyncio.ensure_future(self._check_periodically())

    async def _check_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.check_streams()
            except Exception as exc:
                log_event(logger, logging.ERROR, "stream_check_failed", exc_info=exc)

    async def close(self) -> None:
        task, self._checker = self._checker, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- the live view ------------------------------------------------------------------

    def lease(self, stream_id: str) -> Lease | None:
        """Who holds ``stream_id`` now, if anyone."""
        stream = self._streams.get(stream_id)
        return None if stream is None else stream.lease

    def state(self, stream_id: str) -> StreamState | None:
        """Whether ``stream_id`` is live or reconnecting; None: neither."""
        stream = self._streams.get(stream_id)
        if stream is None or (stream.lease is None and stream.session is None):
            return None
        return stream.state

    def _fresh(self, stream: LiveStream, now: float) -> SessionRecord | None:
        """The stream's session (live, or reconnecting), its counters brought up to now."""
        session = stream.session
        if session is None:
            return None
        lease = stream.lease
        if lease is not None and not lease.resumed:
            lease.holder.refresh(now)
        return stream.session

    def live_sessions(self) -> list[SessionRecord]:
        """The open sessions (live and reconnecting), with their holders' latest counters."""
        now = self.clock()
        records = []
        for stream in self._streams.values():
            record = self._fresh(stream, now)
            if record is not None:
                records.append(record)
        return records

    def live_session(self, stream_id: str) -> SessionRecord | None:
        stream = self._streams.get(stream_id)
        return None if stream is None else self._fresh(stream, self.clock())

    def total_ingest_rate(self) -> float:
        return float(sum(record.ingest_rate for record in self.live_sessions()))

    def holding(self, process: int) -> int:
        """How many open sessions the connections of ``process`` hold."""
        return sum(
            1
            for stream in self._streams.values()
            if stream.session is not None
            and stream.lease is not None
            and stream.lease.holder.key.process == process
        )
