"""The work of this process's publishes: their sessions' counters, segmenters and ledger.

A session opens on the first media message of an accepted publish (not on connect, not on
``publish``) and closes on the last: unpublish, EOF or reset, idle timeout, replacement,
an operator's kick, the key being disabled, or shutdown. It ends exactly once, with
``ended_at``/``duration`` those of its last media packet. Who may publish and how each
session ends is decided by the owner of the live streams (:mod:`sessions.owner`, asked
through its :class:`~sessions.owner.Owner` interface, in this process or in the main
one); the :class:`SessionManager` holds the connections, does the work, and tells the
owner what happened. Counters live in memory and are written in batches (every
``flush_interval`` seconds and at the end), never per packet; writes go through one queue
(:mod:`sessions.writes`), in order, so a session's row is inserted before it is updated
and updated before it is closed, and a write that fails because the database is locked
or full is retried until it lands.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ingest.hooks import Decision, PublishAttempt, PublisherControl, StreamSink
from ingest.logs import log_event, percentiles_ms
from ingest.rtmp.events import EndCause, MediaReceived, MetadataReceived
from sessions.accounting import MediaAccount
from sessions.attachments import Attachment, AttachmentFactory, MediaTaps
from sessions.health import (
    TRANSCODE_REALTIME,
    HealthRules,
    SessionHealth,
    health_summary,
    is_open,
    merge_issues,
)
from sessions.hls import HandOver, MediaTap, SegmentInfo
from sessions.media_cleanup import MediaExpiry
from sessions.metrics import IngestCounters, ProcessMetrics
from sessions.owner import End, HolderKey, Owner, end_for
from sessions.reconnect import Carried, resume_record
from sessions.recording import close_playlists
from sessions.recovery import Recovery, await_recording
from sessions.segmenting import MediaSettings, SessionMedia
from sessions.webhooks.events import WebhookEvent, session_event
from sessions.writes import FLUSH_TIMEOUT, Job, StoreWrites
from storage import Store, retryable
from storage.models import EndReason, SessionRecord

logger = logging.getLogger("sessions.manager")

#: Why the publishes still open at shutdown are closed.
SHUTTING_DOWN = "server shutting down"


class LivePublish:
    """One accepted publish: the holder of its stream (the owner ends it through
    :meth:`end`) and its media's sink; it becomes a session with its first media message."""

    def __init__(self, manager: SessionManager, attempt: PublishAttempt) -> None:
        self.manager = manager
        self.attempt = attempt
        self.key = HolderKey(manager.process, attempt.connection_id)
        #: The connection, once the publish started.
        self.control: PublisherControl | None = None
        self.stream_id = attempt.key
        self.stream_name = attempt.key
        #: The owner's grant (refused until it grants the stream).
        self.decision = Decision(allowed=False)
        #: What follows this publish's media beside the segmenter (:mod:`sessions.attachments`).
        #: A tuple, replaced (never changed in place) when one is dropped, so the calls
        #: per message loop over it without a copy.
        self.attachments: tuple[Attachment, ...] = ()
        self.base_bytes = 0
        self.playback_id: str | None = None
        self.recorded = False
        self.record: SessionRecord | None = None
        #: The reconnecting session this publish continues (the owner's claim said so),
        #: until its first media message continues it.
        self.continues: SessionRecord | None = None
        #: The counters of the session's parts before this publish's.
        self.carried = Carried()
        self.output: SessionMedia | None = None
        self.account = MediaAccount()
        self.encoder = attempt.encoder
        self.first_media = 0.0
        self.last_media = 0.0
        #: Why the owner asked this publish to end before it started (it is closed as
        #: soon as it starts).
        self._end_asked: str | None = None
        #: Set once the end of the session (if any) is queued for the store.
        self.end_saved = asyncio.Event()
        self._rate_samples: deque[tuple[float, int]] = deque()
        #: The live health checks (:mod:`sessions.health`), ticked every second.
        self.health = SessionHealth(manager.health_rules)
        #: What the record's issues were last built from, and the health last logged.
        self._issues_from: tuple[object, ...] = ()
        #: The issues :meth:`take_issues` put into the record last (the segmenter's and
        #: the health checks'); any other issue there is an attachment's, kept as it is.
        self._issues_built: list[dict[str, Any]] = []
        self._health_said = "healthy"

    def accept(self, decision: Decision) -> None:
        """The owner granted the stream (the decision names it)."""
        self.decision = decision
        self.stream_id = decision.stream_id or self.attempt.key
        self.stream_name = decision.stream_name or self.stream_id
        self.playback_id = decision.playback_id
        self.recorded = decision.record

    def start(self, control: PublisherControl, base_bytes: int) -> None:
        self.control = control
        self.base_bytes = base_bytes
        if self._end_asked is not None:
            # Not from inside the listener's call that started it.
            asyncio.get_running_loop().call_soon(control.close, self._end_asked)

    # -- Holder -------------------------------------------------------------------------

    def end(self, reason: EndReason, why: str) -> None:
        if self.control is None:
            self._end_asked = why
        else:
            self.control.close(why)

    def resume(self, record: SessionRecord) -> None:
        # A copy: the owner keeps its own until this publish opens it.
        self.continues = copy.deepcopy(record)

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
        for attachment in self.attachments:  # per message: no closure, no copy
            try:
                attachment.media(event)
            except Exception as exc:
                self._detach(attachment, "media", exc)

    def metadata(self, event: MetadataReceived) -> None:
        encoder = event.values.get("encoder")
        if isinstance(encoder, str) and encoder:
            self.encoder = encoder
            if self.record is not None:
                self.record.encoder = encoder
        if self.attachments:
            self._attached(lambda a: a.metadata(event), "metadata")

    def ended(self, cause: EndCause, reason: str, bytes_received: int) -> None:
        self.manager._ended(self, cause, reason, bytes_received)

    # -- counters -----------------------------------------------------------------------

    def refresh(self, now: float, bytes_received: int | None = None, sample: bool = False) -> None:
        """Copy the in-memory counters into the session record; with ``sample``, also
        take a rate sample (done once per flush, so the rate window is in flush steps)."""
        record = self.record
        if record is None or self.control is None:
            return
        total = self.control.bytes_received if bytes_received is None else bytes_received
        carried = self.carried
        record.bytes_received = carried.bytes_received + total - self.base_bytes
        record.last_seen = self.last_media
        record.duration = round(self.last_media - self.first_media, 3)
        record.ingest_seconds = round(max(0.0, record.duration - record.gap_seconds), 3)
        record.media_duration = round(carried.media_duration + self.account.media_duration, 3)
        record.media_bytes = carried.media_bytes + self.account.media_bytes
        record.tracks = carried.tracks_with(self.account.tracks_list())
        record.updated_at = now
        if self.attachments:
            self._attached(lambda a: a.refresh(record, now, sample), "refresh")
        self.take_issues(now)
        if not sample:
            return
        samples = self._rate_samples
        samples.append((now, record.bytes_received))
        while len(samples) > 2 and now - samples[1][0] >= self.manager.rate_window:
            samples.popleft()
        oldest_at, oldest_bytes = samples[0]
        if now > oldest_at:
            record.ingest_rate = round((record.bytes_received - oldest_bytes) / (now - oldest_at))

    def check_health(self, now: float) -> None:
        """Evaluate the live health checks (every second while the session is live)."""
        if self.record is not None and self.health.tick(now, self.account):
            self.take_issues(now)

    def take_issues(self, now: float) -> None:
        """The segmenter's coded problems and the live health issues become the session's
        (after the earlier parts' of a session continued after a reconnect; rebuilt only
        when either changed); a change of the open issues is logged as a
        ``stream_health`` event."""
        record = self.record
        if record is None:
            return
        found = self.output.segmenter.issues if self.output is not None else []
        built = {id(issue) for issue in self._issues_built}
        others = [issue for issue in record.issues if id(issue) not in built]
        source = (
            len(found),
            self.health.version,
            tuple((issue.get("code"), issue.get("ended_at")) for issue in others),
        )
        if source == self._issues_from:
            return
        self._issues_from = source
        self._issues_built = [*self.carried.issues, *found, *self.health.issues]
        record.issues = merge_issues(self.carried.issues, found, self.health.issues, others)
        record.is_healthy = not any(is_open(issue) for issue in record.issues)
        self._say_health(record, now)

    def _say_health(self, record: SessionRecord, now: float) -> None:
        """Log a change of the open issues as a ``stream_health`` event."""
        summary = health_summary(record.issues)
        if summary != self._health_said:
            self._health_said = summary
            self.manager._log_event(
                "stream_health", record, now, summary, WebhookEvent.STREAM_HEALTH
            )
            log_event(
                logger,
                logging.INFO if record.is_healthy else logging.WARNING,
                "stream_health",
                session=record.id,
                stream=record.stream_id,
                health=summary,
            )

    # -- attachments --------------------------------------------------------------------

    def _attached(self, call: Callable[[Attachment], object], what: str) -> None:
        """``call`` on every attachment; one that raises is logged and dropped."""
        for attachment in self.attachments:
            try:
                call(attachment)
            except Exception as exc:
                self._detach(attachment, what, exc)

    def _detach(self, attachment: Attachment, what: str, exc: BaseException) -> None:
        self.attachments = tuple(a for a in self.attachments if a is not attachment)
        log_event(
            logger,
            logging.ERROR,
            "attachment_failed",
            conn=self.attempt.connection_id,
            session=self.record.id if self.record is not None else None,
            attachment=type(attachment).__name__,
            step=what,
            exc_info=exc,
        )

    def opened_taps(self, record: SessionRecord, folder: Path | None) -> MediaTap | None:
        """Tell the attachments the session opened; the taps they want on its segmenter."""
        taps: list[MediaTap] = []
        for attachment in self.attachments:
            try:
                tap = attachment.opened(record, folder)
            except Exception as exc:
                self._detach(attachment, "opened", exc)
            else:
                if tap is not None:
                    taps.append(tap)
        if len(taps) > 1:
            return MediaTaps(taps)
        return taps[0] if taps else None

    async def finish_attachments(self) -> None:
        """The publish is over (its segmenter finished): end the attachments' work."""
        for attachment in self.attachments:
            try:
                await attachment.finish(self.record)
            except Exception as exc:
                self._detach(attachment, "finish", exc)
        self.attachments = ()


class SessionManager:
    """The listener's authorizer and publish handler in a process that accepts publishers:
    it asks the owner (:class:`~sessions.owner.Owner`) whether each publish may start and
    how each ends, and does the rest. In the main process of a server with worker
    processes it holds no connections; it ends the sessions of a worker that died and
    makes recordings."""

    def __init__(
        self,
        store: Store,
        owner: Owner,
        *,
        process: int = 0,
        writes: StoreWrites | None = None,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 1.0,
        rate_window: float = 5.0,
        media: MediaSettings | None = None,
        flush_timeout: float = FLUSH_TIMEOUT,
        attachments: Sequence[AttachmentFactory] = (),
        health: HealthRules | None = None,
        health_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.owner = owner
        #: Names this process in the owner's holder keys.
        self.process = process
        #: Every write this process makes to the store, in order, retried until it lands.
        self.writes = writes if writes is not None else StoreWrites(store)
        #: Seconds :meth:`close` waits for pending writes before giving them up.
        self.flush_timeout = flush_timeout
        self.media = media
        #: Makes what follows each publish beside its segmenter (:mod:`sessions.attachments`).
        self.attachment_factories = list(attachments)
        self.clock = clock
        self.flush_interval = flush_interval
        self.rate_window = rate_window
        #: The live health checks' thresholds, and seconds between their evaluations.
        self.health_rules = health if health is not None else HealthRules()
        self.health_interval = health_interval
        #: Publishes accepted and not started yet, and those started, by connection.
        self._accepted: dict[int, LivePublish] = {}
        self._publishes: dict[int, LivePublish] = {}
        self._published_on: weakref.WeakSet[object] = weakref.WeakSet()
        self._flusher_task: asyncio.Task[None] | None = None
        self._health_task: asyncio.Task[None] | None = None
        #: Whether the last flush's counters are still waiting in the write queue.
        self._counters_pending = False
        #: Seconds from a segment's last packet to its listing in the playlist (recent).
        self.availability: deque[float] = deque(maxlen=1000)
        #: What ``GET /metrics`` counts for this process (:mod:`sessions.metrics`).
        self.counters = IngestCounters()
        #: Sessions whose segmenter or recording is still being finished.
        self._finishing: set[asyncio.Task[None]] = set()
        #: Carries every session's waiting media to the executor, many in one job.
        self.handover = HandOver(media.executor) if media is not None else None
        #: Crash recovery, recordings, and media no one may play.
        self.recovery = Recovery(store, self.writes, media, self._spawn)

    async def start(self, *, recover: bool = True) -> list[SessionRecord]:
        """Close what a crash left open (as ``server_restart``), make the recordings it
        left ``waiting`` and delete the media it left for no one, in the background (not
        in a worker process, where the main process did it); then start flushing. Call
        it before accepting publishers: the media folders are listed here. With the
        database locked or full, this waits (retrying, logged as ``store_degraded``)
        instead of failing."""
        recovered = await self.recover() if recover else []
        self._flusher_task = asyncio.ensure_future(self._flusher())
        self._health_task = asyncio.ensure_future(self._health_checks())
        if recover:
            await self.recovery.sweep_orphans()
        return recovered

    async def recover(self, ids: Sequence[str] | None = None) -> list[SessionRecord]:
        """End as ``server_restart`` the sessions still live in the store (all, or those of
        ``ids``: a worker process died), and finish their media (see
        :meth:`~sessions.recovery.Recovery.recover`)."""
        return await self.recovery.recover(ids, now=self.clock())

    async def sweep_recordings(self, days: int) -> int:
        """Delete recordings of sessions that ended more than ``days`` days ago; returns
        once the ledger says so (their writes landed)."""
        return await self.recovery.sweep_recordings(days, now=self.clock())

    @property
    def expiry(self) -> MediaExpiry | None:
        """Unrecorded sessions' media, deleted once their players are done."""
        return self.recovery.expiry

    # -- the listener's authorizer and publish handler ----------------------------------

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        live = LivePublish(self, attempt)
        decision = await self.owner.claim(attempt, live)
        self.counters.publish(decision.allowed, decision.reason)
        if not decision.allowed:
            return decision
        live.accept(decision)
        conn = attempt.connection_id
        self._accepted[conn] = live
        give_back = decision.release

        def release() -> None:
            if self._accepted.get(conn) is live:
                del self._accepted[conn]
            if give_back is not None:
                give_back()

        return dataclasses.replace(decision, release=release)

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        live = self._accepted.pop(attempt.connection_id, None)
        if live is None:
            raise LookupError(f"connection {attempt.connection_id}: no publish was authorized")
        live.start(control, control.bytes_received if control in self._published_on else 0)
        self._published_on.add(control)
        for factory in self.attachment_factories:
            try:
                attachment = factory(live)
            except Exception as exc:
                log_event(
                    logger,
                    logging.ERROR,
                    "attachment_failed",
                    conn=attempt.connection_id,
                    step="start",
                    exc_info=exc,
                )
            else:
                if attachment is not None:
                    live.attachments += (attachment,)
        self._publishes[attempt.connection_id] = live
        return live

    def _open(self, live: LivePublish, now: float) -> SessionRecord:
        """Open the publish's session with its first media message: a new one, or the
        reconnecting one the owner handed it (:mod:`sessions.reconnect`)."""
        record = live.continues
        resumed = record is not None
        if record is not None:
            live.continues = None
            live.carried = Carried.of(record)
            # The earlier parts' issues, closed with them.
            record.issues = list(live.carried.issues)
            record.is_healthy = True
            resume_record(record, now, live.attempt.remote_addr, live.encoder)
            live.first_media = record.created_at
        else:
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
        folder: Path | None = None
        if self.media is not None and live.playback_id is not None:
            folder = self.media.folder(live.playback_id, record.id)
        tap = live.opened_taps(record, folder) if live.attachments else None
        if self.media is not None and self.handover is not None and live.playback_id is not None:
            opened = record
            live.output = SessionMedia(
                self.media,
                self.handover,
                live.playback_id,
                record.id,
                record=record.record,
                on_segments=lambda segments: self._on_segments(opened, segments),
                tap=tap,
                resume=resumed,
            )
        saved = record
        if resumed:
            back = session_event(WebhookEvent.SESSION_RESUMED, record, now)
            self._write(
                lambda: self.store.save_sessions([saved], outbox=[back]),
                f"resume session {record.id}",
            )
        else:
            started = session_event(WebhookEvent.STREAM_STARTED, record, now)
            self._write(
                lambda: self.store.insert_session(saved, outbox=[started]),
                f"insert session {record.id}",
            )
        self.owner.opened(live, record)
        kind = "session_resumed" if resumed else "session_started"
        self._log_event(kind, record, now)
        extra = {"reconnects": record.reconnects, "gap": record.gap_seconds} if resumed else {}
        log_event(
            logger,
            logging.INFO,
            kind,
            session=record.id,
            stream=record.stream_id,
            conn=live.attempt.connection_id,
            remote=record.remote_addr,
            **extra,
        )
        return record

    def _ended(self, live: LivePublish, cause: EndCause, reason: str, bytes_received: int) -> None:
        """The listener says the publish is over: take its last counters now, then ask the
        owner how its session ends and end it."""
        if self._publishes.get(live.key.connection) is live:
            del self._publishes[live.key.connection]
        now = self.clock()
        live.refresh(now, bytes_received)
        if live.record is not None:
            # This publish's bytes (a continued session's earlier parts were counted).
            part = live.record.bytes_received - live.carried.bytes_received
            self.counters.session_ended(live.record.name, part)
        self._spawn(self._end(live, cause, reason, now))

    async def _end(self, live: LivePublish, cause: EndCause, reason: str, now: float) -> None:
        end = await self.owner.disconnected(live, cause, reason)
        record = live.record
        if record is None:
            await live.finish_attachments()
            live.end_saved.set()
            return
        if end is None:
            await self._suspend(live, record, end_for(cause, reason), reason, now)
            return
        self._log_event("session_ended", record, now, end.reason)
        log_event(
            logger,
            logging.INFO,
            "session_ended",
            session=record.id,
            stream=record.stream_id,
            end_reason=end.reason,
            reason=reason,
            duration=record.duration,
            bytes_received=record.bytes_received,
            media_bytes=record.media_bytes,
        )
        if live.output is not None:
            # The session reads as ended only once its last segment is counted.
            await self._finish_output(live, live.output, record, end)
        else:
            await live.finish_attachments()
            _mark_ended(record, end)
            self._save_end(record)
            live.end_saved.set()

    async def _suspend(
        self, live: LivePublish, record: SessionRecord, drop: End, reason: str, now: float
    ) -> None:
        """The owner keeps the session open for a reconnect: finish this part (the segment
        being cut, the playlists without an end), write the counters, then tell the owner
        the session is as it continues."""
        record.status = "reconnecting"
        record.ingest_rate = 0.0
        self._log_event(
            "session_reconnecting", record, now, drop.reason, WebhookEvent.SESSION_RECONNECTING
        )
        log_event(
            logger,
            logging.INFO,
            "session_reconnecting",
            session=record.id,
            stream=record.stream_id,
            dropped=drop.reason,
            reason=reason,
            duration=record.duration,
        )
        if live.output is not None:
            try:
                await live.output.finish(end=False)
            except Exception as exc:
                log_event(
                    logger,
                    logging.ERROR,
                    "segmenter_finish_failed",
                    session=record.id,
                    exc_info=exc,
                )
        live.take_issues(now)
        if live.attachments:
            await live.finish_attachments()
        self._write(lambda: self.store.save_sessions([record]), f"suspend session {record.id}")

        async def tell() -> None:
            self.owner.suspended(record)

        self._write(tell, f"report the suspended session {record.id}")
        live.end_saved.set()

    def end_unheld(self, record: SessionRecord, end: End, playback_id: str | None) -> None:
        """End a session no publish has (its reconnect window passed, or it was kicked,
        its key disabled, the server stopped while it was reconnecting): the owner of
        the live streams in this process asks (see :mod:`sessions.owner`)."""
        self._spawn(self._end_unheld(record, end, playback_id))

    async def _end_unheld(self, record: SessionRecord, end: End, playback_id: str | None) -> None:
        now = self.clock()
        self._log_event("session_ended", record, now, end.reason)
        log_event(
            logger,
            logging.INFO,
            "session_ended",
            session=record.id,
            stream=record.stream_id,
            end_reason=end.reason,
            reason="ended while reconnecting",
            duration=record.duration,
            bytes_received=record.bytes_received,
            media_bytes=record.media_bytes,
        )
        _mark_ended(record, end)
        media = self.media
        folder = None
        if media is not None and playback_id is not None:
            folder = media.folder(playback_id, record.id)
            if folder.is_dir():
                close_playlists(folder)
            else:
                folder = None
        if folder is not None and media is not None and playback_id is not None and record.record:
            await_recording(record, media, playback_id)
            self._save_end(record)
            await self.recovery.make_recording(media, folder, record)
            return
        self._save_end(record)
        if folder is not None and self.expiry is not None:
            self.expiry.schedule(folder)

    def _on_segments(self, record: SessionRecord, segments: list[SegmentInfo]) -> None:
        """Count finished segments into the session and the ledger."""
        now = self.clock()
        self.counters.segments_written += len(segments)
        for segment in segments:
            if segment.last_arrival:
                available = max(0.0, now - segment.last_arrival)
                self.availability.append(available)
                self.counters.availability.observe(available)
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
        end: End,
    ) -> None:
        """Close the last segment and the playlists, end and save the session, then make
        the recording (if any) in the executor."""
        try:
            await output.finish()
        except Exception as exc:
            log_event(
                logger, logging.ERROR, "segmenter_finish_failed", session=record.id, exc_info=exc
            )
        # The segmenter's and health's issues first: the attachments add theirs beside them.
        live.take_issues(self.clock())
        if live.attachments:
            await live.finish_attachments()
        _mark_ended(record, end)
        # The segmenter's last issues and the attachments' final ones, merged.
        live.take_issues(self.clock())
        settings = output.settings
        if record.record:
            await_recording(record, settings, output.playback_id)
        self._save_end(record)
        live.end_saved.set()
        if record.record:
            await self.recovery.make_recording(settings, output.folder, record)
        elif self.expiry is not None:
            self.expiry.schedule(output.folder)

    def segment_availability(self) -> dict[str, float] | None:
        """How long after its last packet a segment was listed (p50/p99/max, ms)."""
        return percentiles_ms(self.availability)

    def metrics(self) -> ProcessMetrics:
        """This process's counters, with its live sessions' bytes so far and the gauges
        of the moment (the shell adds connections and loop lag)."""
        counters = self.counters
        received = dict(counters.ended_bytes)
        live = lagging = 0
        for publish in self._publishes.values():
            record, control = publish.record, publish.control
            if record is None or control is None:
                continue
            live += 1
            if any(i.get("code") == TRANSCODE_REALTIME and is_open(i) for i in record.issues):
                lagging += 1
            so_far = max(0, control.bytes_received - publish.base_bytes)
            received[record.name] = received.get(record.name, 0) + so_far
        writes = self.writes.health()
        return ProcessMetrics(
            live_sessions=live,
            pending_writes=writes.pending_writes,
            publishes_accepted=counters.publishes_accepted,
            publishes_rejected=dict(counters.publishes_rejected),
            segments_written=counters.segments_written,
            transcode_lagging=lagging,
            dropped_writes=writes.dropped_writes,
            received_bytes=received,
            availability=counters.availability.copy(),
            store_writes=self.writes.latency.copy(),
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in the background; :meth:`close` waits for it."""
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return task

    # -- writing ------------------------------------------------------------------------

    def _log_event(
        self,
        kind: str,
        record: SessionRecord,
        at: float,
        reason: str | None = None,
        webhook: WebhookEvent | None = None,
    ) -> None:
        """Queue an event-log row about ``record``; with ``webhook``, the same write puts
        that event about the session in the webhooks' outbox."""
        self.writes.event(
            kind,
            at=at,
            stream_id=record.stream_id,
            session_id=record.id,
            remote_addr=record.remote_addr,
            reason=reason,
            webhook=session_event(webhook, record, at) if webhook is not None else None,
        )

    def _save_end(self, record: SessionRecord) -> None:
        """Queue an ended session's last write, then the news, for the owner, that it
        landed."""
        idle = session_event(WebhookEvent.STREAM_IDLE, record, record.ended_at or record.last_seen)
        self._write(
            lambda: self.store.save_sessions([record], outbox=[idle]), f"end session {record.id}"
        )

        async def tell() -> None:
            self.owner.closed(record.id)

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

    def set_health_rules(self, rules: HealthRules) -> None:
        """New thresholds for the health checks, live sessions' included."""
        self.health_rules = rules
        for live in self._publishes.values():
            live.health.rules = rules

    async def _health_checks(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            try:
                self.check_health()
            except Exception as exc:
                log_event(logger, logging.ERROR, "health_check_failed", exc_info=exc)

    def check_health(self) -> None:
        """Evaluate every live session's health checks (:mod:`sessions.health`)."""
        now = self.clock()
        for live in self._publishes.values():
            live.check_health(now)

    async def flush(self) -> None:
        """Queue a write of every live session's counters (one batch) and tell the owner.
        While the last batch is still queued (the store is failing) no other is added: it
        writes the counters as they are when it finally runs."""
        now = self.clock()
        records = []
        for live in self._publishes.values():
            if live.record is not None:
                live.refresh(now, sample=True)
                records.append(live.record)
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
        self.owner.saved(records)

    async def close(self) -> None:
        """Close every publish still open (they end as ``shutdown``), write everything,
        stop. Writes the store still refuses after ``flush_timeout`` seconds are given up
        and counted in the log (``store_writes_lost``): a session whose end was lost is
        closed as ``server_restart`` at the next start."""
        self.recovery.stop()
        for live in list(self._publishes.values()):
            if live.control is not None:
                live.control.close(SHUTTING_DOWN)
        while self._finishing:
            await asyncio.gather(*list(self._finishing), return_exceptions=True)
        if self.expiry is not None:
            await self.expiry.close()
        for task in (self._flusher_task, self._health_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._flusher_task = self._health_task = None
        await self.writes.flush(self.flush_timeout)


def _mark_ended(record: SessionRecord, end: End) -> None:
    record.status = "ended"
    record.ended_at = record.last_seen
    record.ingest_rate = 0.0  # nothing is being ingested any more (README: the counters)
    record.end_reason = end.reason
    if end.error is not None:
        record.err_message = end.error
