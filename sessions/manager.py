"""The one owner of live-session state.

A session opens on the first media message of an accepted publish (not on connect, not on
``publish``) and closes on the last: unpublish, EOF or reset, idle timeout, replacement,
an operator's kick, the key being disabled, or shutdown. It ends exactly once, with
``ended_at``/``duration`` those of its last media packet. Counters live in memory and are
written in batches (every ``flush_interval`` seconds and at the end), never per packet;
writes go through one queue (:mod:`sessions.writes`), in order, so a session's row is
inserted before it is updated and updated before it is closed, and a write that fails
because the database is locked or full is retried until it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

from ingest.hooks import Decision, PublishAttempt, PublisherControl, StreamSink
from ingest.logs import log_event, percentiles_ms
from ingest.rtmp.events import MediaReceived, MetadataReceived
from sessions.accounting import MediaAccount
from sessions.hls import SegmentInfo
from sessions.media_cleanup import MediaExpiry, SessionFolder, session_folders, sweep_orphans
from sessions.publishers import REPLACED_REASON
from sessions.recording import (
    REMUX_CONCURRENCY,
    close_playlists,
    delete_media,
    remove_partial_files,
)
from sessions.segmenting import MediaSettings, SessionMedia
from sessions.writes import FLUSH_TIMEOUT, Job, StoreWrites
from storage import Store, retryable
from storage.models import SessionRecord

logger = logging.getLogger("sessions.manager")

#: end_reason for each way the listener says a publish ended.
#: Seconds a kick or a disabled key waits for the session's end to reach the store.
_END_SAVE_TIMEOUT = 10.0

_END_REASONS = {
    "unpublished": "unpublished",
    "closed_by_peer": "disconnected",
    "idle_timeout": "timeout",
    "protocol_error": "disconnected",
    "handshake_timeout": "disconnected",
    "rejected": "disconnected",
    "closed_locally": "shutdown",
}


class SessionObserver(Protocol):
    """Told of sessions as they open, are flushed and end (a worker process tells the
    main process, whose API lists every worker's sessions)."""

    def opened(self, record: SessionRecord) -> None: ...

    def saved(self, records: list[SessionRecord]) -> None:
        """Live sessions' counters at a flush (queued for the store, which may be behind
        while its writes are failing: :attr:`SessionManager.writes` says)."""
        ...

    def ended(self, record: SessionRecord) -> None:
        """The session's end is in the store."""
        ...


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
        self.playback_id: str | None = None
        self.recorded = False
        self.record: SessionRecord | None = None
        self.output: SessionMedia | None = None
        self.account = MediaAccount()
        self.encoder = attempt.encoder
        self.first_media = 0.0
        self.last_media = 0.0
        #: Set before this side closes the connection, so the end says why.
        self.end_reason: str | None = None
        #: Set once the end of the session (if any) is queued for the store.
        self.end_saved = asyncio.Event()
        self._rate_samples: deque[tuple[float, int]] = deque()

    # -- StreamSink ---------------------------------------------------------------------

    def media(self, event: MediaReceived) -> None:
        now = self.manager.clock()
        if self.record is None:
            self.first_media = now
            self.record = self.manager._open(self, now)
        self.last_media = now
        packets = self.account.add(event)
        if self.output is not None:
            self.output.feed(event.message_type, event.timestamp, event.payload, now, packets)

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
        if self.output is not None:
            _take_issues(record, self.output)
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
        media: MediaSettings | None = None,
        observer: SessionObserver | None = None,
        flush_timeout: float = FLUSH_TIMEOUT,
    ) -> None:
        self.store = store
        #: Every write this process makes to the store, in order, retried until it lands.
        self.writes = StoreWrites(store)
        #: Seconds :meth:`close` waits for pending writes before giving them up.
        self.flush_timeout = flush_timeout
        self.media = media
        self.observer = observer
        self.clock = clock
        self.flush_interval = flush_interval
        self.rate_window = rate_window
        self.started_at = clock()
        self._by_stream: dict[str, LivePublish] = {}
        self._sessions: dict[str, LivePublish] = {}
        self._published_on: weakref.WeakSet[object] = weakref.WeakSet()
        self._flusher_task: asyncio.Task[None] | None = None
        #: Whether the last flush's counters are still waiting in the write queue.
        self._counters_pending = False
        #: Seconds from a segment's last packet to its listing in the playlist (recent).
        self.availability: deque[float] = deque(maxlen=1000)
        #: Sessions whose segmenter or recording is still being finished.
        self._finishing: set[asyncio.Task[None]] = set()
        #: Unrecorded sessions' media, deleted once their players are done.
        self.expiry = MediaExpiry(media) if media is not None else None
        self._remuxing = asyncio.Semaphore(REMUX_CONCURRENCY)
        self._closing = False
        #: The sweep of orphaned media at start, while it runs.
        self._sweeping: asyncio.Task[None] | None = None

    async def start(self, *, recover: bool = True) -> list[SessionRecord]:
        """Close what a crash left open (as ``server_restart``), make the recordings it
        left ``waiting`` and delete the media it left for no one, in the background (not
        in a worker process, where the main process did it); then start flushing. Call
        it before accepting publishers: the media folders are listed here. With the
        database locked or full, this waits (retrying, logged as ``store_degraded``)
        instead of failing."""
        recovered = await self.recover() if recover else []
        self._flusher_task = asyncio.ensure_future(self._flusher())
        if recover and self.media is not None:
            loop = asyncio.get_running_loop()
            folders = await loop.run_in_executor(
                self.media.executor, session_folders, self.media.root
            )
            self._sweeping = self._spawn(self._sweep_orphans(self.media, folders))
        return recovered

    async def recover(self, ids: Sequence[str] | None = None) -> list[SessionRecord]:
        """End as ``server_restart`` the sessions still live in the store (all, or those of
        ``ids``: a worker process died), close their playlists and make their recordings
        in the background; at start (all), also every recording a crash left
        ``waiting`` (killed while making it, or before)."""
        now = self.clock()
        recovered = await self.writes.call(
            "close sessions left open",
            lambda: self.store.close_open_sessions(reason="server_restart", now=now, ids=ids),
        )
        for record in recovered:
            log_event(
                logger,
                logging.WARNING,
                "session_recovered",
                session=record.id,
                stream=record.stream_id,
                end_reason="server_restart",
            )
            await self._finish_recovered(record)
        if self.media is None:
            return recovered
        if ids is None:
            waiting = await self.store.sessions_awaiting_recording()
        else:
            waiting = [r for r in recovered if r.recording_status == "waiting"]
        if waiting:
            self._spawn(self._resume_recordings(self.media, waiting))
        return recovered

    async def _finish_recovered(self, record: SessionRecord) -> None:
        """Close the playlists a crash left open and remove its half-written files; a
        recorded session's recording is marked ``waiting`` (:meth:`recover` makes it), an
        unrecorded one's media is deleted once its players are done."""
        if self.media is None:
            return
        playback_id = (await self.store.playback_ids([record.stream_id])).get(record.stream_id)
        if playback_id is None:
            return
        folder = self.media.folder(playback_id, record.id)
        if not folder.is_dir():
            return
        close_playlists(folder)
        remove_partial_files(folder)
        if record.record and record.recording_status in (None, "waiting"):
            _await_recording(record, self.media, playback_id)
            # Awaited: recover() then reads which recordings are waiting.
            await self.writes.call(
                f"save session {record.id}", lambda: self.store.save_sessions([record])
            )
        elif not record.record and self.expiry is not None:
            self.expiry.schedule(folder)

    async def _resume_recordings(self, media: MediaSettings, records: list[SessionRecord]) -> None:
        """Make the recordings of ``records`` (all ``waiting``), a few at a time; those not
        begun when the server stops stay ``waiting`` for the next start."""
        try:
            owners = await self.store.playback_ids({r.stream_id for r in records})
        except Exception as exc:  # they stay waiting: the next start tries again
            log_event(logger, logging.ERROR, "recordings_not_resumed", exc_info=exc)
            return
        pending = iter(records)

        async def run() -> None:
            for record in pending:
                if self._closing:
                    return
                playback_id = owners.get(record.stream_id)
                if playback_id is None:
                    continue
                log_event(logger, logging.INFO, "recording_resumed", session=record.id)
                _await_recording(record, media, playback_id)
                await self._make_recording(media, media.folder(playback_id, record.id), record)

        await asyncio.gather(*(run() for _ in range(REMUX_CONCURRENCY)))

    async def _sweep_orphans(self, media: MediaSettings, folders: list[SessionFolder]) -> None:
        """Delete, of the media folders listed at start, those no one may play, once the
        writes queued so far (the recovered sessions' ends) are in the store (if the
        server stops first, the next start sweeps)."""
        await self.writes.join()
        try:
            swept = await sweep_orphans(self.store, media, folders)
        except Exception as exc:
            log_event(logger, logging.ERROR, "media_sweep_failed", exc_info=exc)
            return
        if swept.removed or swept.unknown_recordings:
            log_event(
                logger,
                logging.WARNING if swept.unknown_recordings else logging.INFO,
                "orphan_media_deleted",
                folders=swept.removed,
                unknown_recordings_kept=swept.unknown_recordings,
            )

    async def sweep_recordings(self, days: int) -> int:
        """Delete recordings of sessions that ended more than ``days`` days ago; returns
        once the ledger says so (their writes landed)."""
        if self.media is None or days <= 0:
            return 0
        cutoff = self.clock() - days * 86400
        removed = 0
        offset = 0
        while True:
            page, _ = await self.store.list_sessions(
                status="ended", until=cutoff, offset=offset, limit=500
            )
            if not page:
                if removed:
                    await self.writes.join()
                return removed
            offset += len(page)
            owners = await self.store.playback_ids({r.stream_id for r in page})
            for record in page:
                if not record.record or record.recording_status == "deleted":
                    continue
                if record.ended_at is None or record.ended_at >= cutoff:
                    continue
                playback_id = owners.get(record.stream_id)
                if playback_id is not None:
                    delete_media(self.media.folder(playback_id, record.id))
                record.recording_status = "deleted"
                record.recording_url = record.mp4_url = None
                self._save(record)
                removed += 1

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
        live.playback_id = decision.playback_id
        live.recorded = decision.record
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
        record.record = live.recorded
        self._sessions[record.id] = live
        if self.media is not None and live.playback_id is not None:
            live.output = SessionMedia(
                self.media,
                live.playback_id,
                record.id,
                record=live.recorded,
                on_segments=lambda segments: self._on_segments(record, segments),
            )
        self._write(lambda: self.store.insert_session(record), f"insert session {record.id}")
        if self.observer is not None:
            self.observer.opened(record)
        self._log_event("session_started", record, now)
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
            live.end_saved.set()
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
        error = reason if cause == "protocol_error" else None
        if live.output is not None:
            # The session reads as ended only once its last segment is counted.
            self._spawn(self._finish_output(live, live.output, record, end_reason, error))
        else:
            _mark_ended(record, end_reason, error)
            self._save_end(record)
            live.end_saved.set()
        self._log_event("session_ended", record, now, end_reason)
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

    def _on_segments(self, record: SessionRecord, segments: list[SegmentInfo]) -> None:
        """Count finished segments into the session and the ledger."""
        now = self.clock()
        for segment in segments:
            if segment.last_arrival:
                self.availability.append(max(0.0, now - segment.last_arrival))
            record.source_segments += 1
            record.source_segments_duration = round(
                record.source_segments_duration + segment.duration, 6
            )
            record.source_bytes += segment.bytes
            self._write(
                self._segment_row(record.id, segment), f"segment {record.id}/{segment.sequence}"
            )

    def _segment_row(self, session_id: str, segment: SegmentInfo) -> Job:
        def write() -> Awaitable[object]:
            return self.store.add_segment(
                session_id,
                sequence=segment.sequence,
                uri=segment.uri,
                duration=segment.duration,
                bytes=segment.bytes,
                first_timestamp=segment.first_timestamp,
                keyframe_start=segment.keyframe_start,
                discontinuity=segment.discontinuity,
                now=segment.program_date_time,
            )

        return write

    async def _finish_output(
        self,
        live: LivePublish,
        output: SessionMedia,
        record: SessionRecord,
        end_reason: str,
        error: str | None,
    ) -> None:
        """Close the last segment and the playlists, end and save the session, then make
        the recording (if any) in the executor."""
        try:
            await output.finish()
        except Exception as exc:
            log_event(
                logger, logging.ERROR, "segmenter_finish_failed", session=record.id, exc_info=exc
            )
        _mark_ended(record, end_reason, error)
        _take_issues(record, output)
        settings = output.settings
        if record.record:
            _await_recording(record, settings, output.playback_id)
        self._save_end(record)
        live.end_saved.set()
        if record.record:
            await self._make_recording(settings, output.folder, record)
        elif self.expiry is not None:
            self.expiry.schedule(output.folder)

    async def _make_recording(
        self, settings: MediaSettings, folder: Path, record: SessionRecord
    ) -> None:
        try:
            async with self._remuxing:
                await settings.remux(folder)
        except Exception as exc:
            record.recording_status = "failed"
            record.err_message = record.err_message or f"recording: {exc}"
            log_event(logger, logging.ERROR, "recording_failed", session=record.id, error=str(exc))
        else:
            record.recording_status = "ready"
            log_event(logger, logging.INFO, "recording_ready", session=record.id)
        self._save(record)

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

    def segment_availability(self) -> dict[str, float] | None:
        """How long after its last packet a segment was listed (p50/p99/max, ms)."""
        return percentiles_ms(self.availability)

    def total_ingest_rate(self) -> float:
        return float(sum(r.ingest_rate for r in self.live_sessions()))

    async def kick(self, session_id: str) -> bool:
        live = self._sessions.get(session_id)
        if live is None:
            return False
        await self._close_and_save(live, "kicked", "kicked by an operator")
        return True

    async def end_stream(self, stream_id: str, reason: str = "key_disabled") -> bool:
        """End the stream's live publish (its key was disabled or the stream deleted)."""
        live = self._by_stream.get(stream_id)
        if live is None:
            return False
        await self._close_and_save(live, reason, f"stream {reason.replace('_', ' ')}")
        return True

    def _close(self, live: LivePublish, end_reason: str, why: str) -> None:
        live.end_reason = end_reason
        live.control.close(why)

    async def _close_and_save(self, live: LivePublish, end_reason: str, why: str) -> None:
        """End a publish and return once its end is in the store, so that a read made
        after the answer sees it."""
        self._close(live, end_reason, why)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_END_SAVE_TIMEOUT):
                await live.end_saved.wait()
                await self.writes.join()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in the background; :meth:`close` waits for it."""
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return task

    # -- writing ------------------------------------------------------------------------

    def _log_event(
        self, kind: str, record: SessionRecord, at: float, reason: str | None = None
    ) -> None:
        """Queue an event-log row about ``record``."""
        self.writes.event(
            kind,
            at=at,
            stream_id=record.stream_id,
            session_id=record.id,
            remote_addr=record.remote_addr,
            reason=reason,
        )

    def _save(self, record: SessionRecord) -> None:
        """Queue a write of the session's row as it is when the write runs."""
        self._write(lambda: self.store.save_sessions([record]), f"save session {record.id}")

    def _save_end(self, record: SessionRecord) -> None:
        """Queue an ended session's last write, then the observer's news of it."""
        self._write(lambda: self.store.save_sessions([record]), f"end session {record.id}")
        observer = self.observer
        if observer is not None:

            async def tell() -> None:
                observer.ended(record)

            self._write(tell, f"report the end of session {record.id}")

    def _write(self, job: Job, what: str = "store write") -> None:
        """Queue a write (see :class:`~sessions.writes.StoreWrites`): in order, retried
        until it lands."""
        self.writes.put(what, job)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception as exc:
                log_event(logger, logging.ERROR, "flush_failed", exc_info=exc)

    async def flush(self) -> None:
        """Queue a write of every live session's counters (one batch), end publishes whose
        stream was disabled or deleted meanwhile (by the CLI, say), and tell the observer.
        While the last batch is still queued (the store is failing) no other is added: it
        writes the counters as they are when it finally runs."""
        records = self.live_sessions(sample=True)
        if records and not self._counters_pending:
            self._counters_pending = True

            async def save() -> None:
                try:
                    await self.store.save_sessions(records)
                except Exception as exc:
                    if not retryable(exc):
                        self._counters_pending = False
                    raise
                self._counters_pending = False

            self._write(save, f"counters of {len(records)} live sessions")
        stored = [(sid, live) for sid, live in self._by_stream.items() if live.stored_stream]
        if stored:
            enabled = await self.store.enabled_streams(sid for sid, _ in stored)
            for stream_id, live in stored:
                if stream_id not in enabled and self._by_stream.get(stream_id) is live:
                    self._close(live, "key_disabled", "stream disabled")
        if self.observer is not None:
            self.observer.saved(records)

    async def close(self) -> None:
        """End every live publish as ``shutdown``, write everything, stop. Writes the
        store still refuses after ``flush_timeout`` seconds are given up and counted in
        the log (``store_writes_lost``): a session whose end was lost is closed as
        ``server_restart`` at the next start."""
        self._closing = True
        if self._sweeping is not None:
            # It may be waiting for writes a failing store does not take.
            self._sweeping.cancel()
        for live in list(self._by_stream.values()):
            self._close(live, "shutdown", "server shutting down")
        while self._finishing:
            await asyncio.gather(*list(self._finishing), return_exceptions=True)
        if self.expiry is not None:
            await self.expiry.close()
        task, self._flusher_task = self._flusher_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.writes.flush(self.flush_timeout)


def _mark_ended(record: SessionRecord, end_reason: str, error: str | None) -> None:
    record.status = "ended"
    record.ended_at = record.last_seen
    record.ingest_rate = 0.0  # nothing is being ingested any more (README: the counters)
    record.end_reason = end_reason
    if error is not None:
        record.err_message = error


def _take_issues(record: SessionRecord, output: SessionMedia) -> None:
    """The segmenter's coded problems become the session's."""
    if output.segmenter.issues:
        record.issues = list(output.segmenter.issues)
        record.is_healthy = False


def _await_recording(record: SessionRecord, settings: MediaSettings, playback_id: str) -> None:
    """Mark the session's recording as on its way, with the URLs it will have."""
    record.recording_status = "waiting"
    record.recording_url = settings.recording_url(playback_id, record.id)
    record.mp4_url = settings.mp4_url(playback_id, record.id)
