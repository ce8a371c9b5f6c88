"""The one owner of live-session state.

A session opens on the first media message of an accepted publish (not on connect, not on
``publish``) and closes on the last: unpublish, EOF or reset, idle timeout, replacement,
an operator's kick, the key being disabled, or shutdown. It ends exactly once, with
``ended_at``/``duration`` those of its last media packet. Counters live in memory and are
written in batches (every ``flush_interval`` seconds and at the end), never per packet;
writes go through one queue, in order, so a session's row is inserted before it is
updated and updated before it is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable

from ingest.hooks import Decision, PublishAttempt, PublisherControl, StreamSink
from ingest.logs import log_event
from ingest.rtmp.events import MediaReceived, MetadataReceived
from sessions.accounting import MediaAccount
from sessions.publishers import REPLACED_REASON
from storage import Store
from storage.models import SessionRecord

logger = logging.getLogger("sessions.manager")

#: end_reason for each way the listener says a publish ended.
_END_REASONS = {
    "unpublished": "unpublished",
    "closed_by_peer": "disconnected",
    "idle_timeout": "timeout",
    "protocol_error": "disconnected",
    "handshake_timeout": "disconnected",
    "rejected": "disconnected",
    "closed_locally": "shutdown",
}


class LivePublish:
    """One accepted publish; it becomes a session with its first media message."""

    def __init__(
        self,
        manager: SessionManager,
        attempt: PublishAttempt,
        control: PublisherControl,
        stream_id: str,
        stream_name: str,
        base_bytes: int,
    ) -> None:
        self.manager = manager
        self.attempt = attempt
        self.control = control
        self.stream_id = stream_id
        self.stream_name = stream_name
        self.base_bytes = base_bytes
        #: Whether the stream is a row in the store (and so can be disabled or deleted).
        self.stored_stream = False
        self.record: SessionRecord | None = None
        self.account = MediaAccount()
        self.encoder = attempt.encoder
        self.first_media = 0.0
        self.last_media = 0.0
        #: Set before this side closes the connection, so the end says why.
        self.end_reason: str | None = None
        self._rate_samples: deque[tuple[float, int]] = deque()

    # -- StreamSink ---------------------------------------------------------------------

    def media(self, event: MediaReceived) -> None:
        now = self.manager.clock()
        if self.record is None:
            self.first_media = now
            self.record = self.manager._open(self, now)
        self.last_media = now
        self.account.add(event)

    def metadata(self, event: MetadataReceived) -> None:
        encoder = event.values.get("encoder")
        if isinstance(encoder, str) and encoder:
            self.encoder = encoder
            if self.record is not None:
                self.record.encoder = encoder

    def ended(self, cause: str, reason: str, bytes_received: int) -> None:
        self.manager._ended(self, cause, reason, bytes_received)

    # -- counters -----------------------------------------------------------------------

    def refresh(self, now: float, bytes_received: int | None = None, sample: bool = False) -> None:
        """Copy the in-memory counters into the session record; with ``sample``, also
        take a rate sample (done once per flush, so the rate window is in flush steps)."""
        record = self.record
        if record is None:
            return
        total = self.control.bytes_received if bytes_received is None else bytes_received
        record.bytes_received = total - self.base_bytes
        record.last_seen = self.last_media
        record.duration = round(self.last_media - self.first_media, 3)
        record.ingest_seconds = record.duration
        record.media_duration = round(self.account.media_duration, 3)
        record.media_bytes = self.account.media_bytes
        record.tracks = self.account.tracks_list()
        record.updated_at = now
        if not sample:
            return
        samples = self._rate_samples
        samples.append((now, record.bytes_received))
        while len(samples) > 2 and now - samples[1][0] >= self.manager.rate_window:
            samples.popleft()
        oldest_at, oldest_bytes = samples[0]
        if now > oldest_at:
            record.ingest_rate = round((record.bytes_received - oldest_bytes) / (now - oldest_at))


class SessionManager:
    """Publish handler for the listener, and the live view the API reads."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 1.0,
        rate_window: float = 5.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flush_interval = flush_interval
        self.rate_window = rate_window
        self.started_at = clock()
        self._by_stream: dict[str, LivePublish] = {}
        self._sessions: dict[str, LivePublish] = {}
        self._published_on: weakref.WeakSet[object] = weakref.WeakSet()
        self._writes: asyncio.Queue[Callable[[], Awaitable[object]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> list[SessionRecord]:
        """Close what a crash left open (as ``server_restart``), then start flushing."""
        recovered = await self.store.close_open_sessions(reason="server_restart", now=self.clock())
        for record in recovered:
            log_event(
                logger,
                logging.WARNING,
                "session_recovered",
                session=record.id,
                stream=record.stream_id,
                end_reason="server_restart",
            )
        self._tasks = [
            asyncio.ensure_future(self._writer()),
            asyncio.ensure_future(self._flusher()),
        ]
        return recovered

    # -- PublishHandler -----------------------------------------------------------------

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        base = control.bytes_received if control in self._published_on else 0
        self._published_on.add(control)
        stream_id = decision.stream_id or attempt.key
        live = LivePublish(
            self, attempt, control, stream_id, decision.stream_name or stream_id, base
        )
        live.stored_stream = decision.stream_id is not None
        self._by_stream[stream_id] = live
        return live

    def _open(self, live: LivePublish, now: float) -> SessionRecord:
        record = SessionRecord(
            id=str(uuid.uuid4()),
            stream_id=live.stream_id,
            name=live.stream_name,
            created_at=now,
            last_seen=now,
            updated_at=now,
            remote_addr=live.attempt.remote_addr,
            encoder=live.encoder,
        )
        self._sessions[record.id] = live
        self._write(lambda: self.store.insert_session(record))
        self._write(
            lambda: self.store.log_event(
                "session_started",
                at=now,
                stream_id=record.stream_id,
                session_id=record.id,
                remote_addr=record.remote_addr,
            )
        )
        log_event(
            logger,
            logging.INFO,
            "session_started",
            session=record.id,
            stream=record.stream_id,
            conn=live.attempt.connection_id,
            remote=record.remote_addr,
        )
        return record

    def _ended(self, live: LivePublish, cause: str, reason: str, bytes_received: int) -> None:
        if self._by_stream.get(live.stream_id) is live:
            del self._by_stream[live.stream_id]
        record = live.record
        if record is None:
            return
        self._sessions.pop(record.id, None)
        now = self.clock()
        live.refresh(now, bytes_received)
        if live.end_reason is not None:
            end_reason = live.end_reason
        elif cause == "closed_locally" and reason == REPLACED_REASON:
            end_reason = "replaced"
        else:
            end_reason = _END_REASONS.get(cause, "disconnected")
        record.status = "ended"
        record.ended_at = record.last_seen
        record.end_reason = end_reason
        if cause == "protocol_error":
            record.err_message = reason
        self._write(lambda: self.store.save_sessions([record]))
        self._write(
            lambda: self.store.log_event(
                "session_ended",
                at=now,
                stream_id=record.stream_id,
                session_id=record.id,
                remote_addr=record.remote_addr,
                reason=end_reason,
            )
        )
        log_event(
            logger,
            logging.INFO,
            "session_ended",
            session=record.id,
            stream=record.stream_id,
            end_reason=end_reason,
            reason=reason,
            duration=record.duration,
            bytes_received=record.bytes_received,
            media_bytes=record.media_bytes,
        )

    # -- the live view (for the API) ----------------------------------------------------

    def live_sessions(self, *, sample: bool = False) -> list[SessionRecord]:
        now = self.clock()
        records = []
        for live in self._sessions.values():
            live.refresh(now, sample=sample)
            if live.record is not None:
                records.append(live.record)
        return records

    def live_session(self, stream_id: str) -> SessionRecord | None:
        live = self._by_stream.get(stream_id)
        if live is None or live.record is None:
            return None
        live.refresh(self.clock())
        return live.record

    def total_ingest_rate(self) -> float:
        return float(sum(r.ingest_rate for r in self.live_sessions()))

    async def kick(self, session_id: str) -> bool:
        live = self._sessions.get(session_id)
        if live is None:
            return False
        self._close(live, "kicked", "kicked by an operator")
        await self._writes.join()  # so that a read after the answer sees the end
        return True

    async def end_stream(self, stream_id: str, reason: str = "key_disabled") -> bool:
        """End the stream's live publish (its key was disabled or the stream deleted)."""
        live = self._by_stream.get(stream_id)
        if live is None:
            return False
        self._close(live, reason, f"stream {reason.replace('_', ' ')}")
        await self._writes.join()
        return True

    def _close(self, live: LivePublish, end_reason: str, why: str) -> None:
        live.end_reason = end_reason
        live.control.close(why)

    # -- writing ------------------------------------------------------------------------

    def _write(self, job: Callable[[], Awaitable[object]]) -> None:
        self._writes.put_nowait(job)

    async def _writer(self) -> None:
        while True:
            job = await self._writes.get()
            try:
                await job()
            except Exception as exc:
                log_event(logger, logging.ERROR, "store_write_failed", exc_info=exc)
            finally:
                self._writes.task_done()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception as exc:
                log_event(logger, logging.ERROR, "flush_failed", exc_info=exc)

    async def flush(self) -> None:
        """Write every live session's counters (one batch), and end publishes whose
        stream was disabled or deleted meanwhile (by the CLI, say)."""
        records = self.live_sessions(sample=True)
        if records:
            self._write(lambda: self.store.save_sessions(records))
        for stream_id, live in list(self._by_stream.items()):
            if not live.stored_stream:
                continue
            stream = await self.store.get_stream(stream_id)
            if (stream is None or stream.disabled) and self._by_stream.get(stream_id) is live:
                self._close(live, "key_disabled", "stream disabled")
        await self._writes.join()

    async def close(self) -> None:
        """End every live publish as ``shutdown``, write everything, stop."""
        for live in list(self._by_stream.values()):
            self._close(live, "shutdown", "server shutting down")
        await self._writes.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
