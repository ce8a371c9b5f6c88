"""Forwarding each live session to its stream's multistream targets: the attachment
(:mod:`sessions.attachments`) that runs the forwarding engine (:mod:`ingest.multistream`)
beside a publish, in whichever process holds the publish.

When a session opens, its stream's enabled targets are read from the store; messages
that arrive meanwhile wait (up to ``max_buffer`` bytes), so a target that connects in
time gets the session from its first message. A stream with no enabled targets costs
nothing more after that read. Every refresh of the session writes each target's counters
into the session's ``multistream`` list; each target's events (``connected``, ``error``,
``disconnected``) go to the event log as ``multistream.<kind>`` and to the log; a target
that cannot be kept connected (:data:`~ingest.multistream.FAILED_AFTER` attempts in a
row failed) raises the session issue ``multistream_failed``. The targets' URLs hold a
third party's key: nothing here logs or stores them (the engine masks its messages).

While a session forwards, its stream's targets are read again every
:data:`RECHECK_INTERVAL` seconds: a target added or enabled since joins at the next
keyframe (after the stream's headers), one disabled or deleted is ended (its entry stays,
``ended``). A session that forwards to no target at its start forwards to none (its
stream's headers were not kept): targets added meanwhile take effect at the stream's next
session, as do changed URLs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.logs import log_event
from ingest.multistream import (
    ForwardSettings,
    Multistream,
    Target,
    TargetEvent,
    TargetStats,
    TargetStatus,
)
from ingest.rtmp.events import MediaReceived, MetadataReceived
from ingest.rtmp.url import parse_rtmp_url
from sessions.attachments import Attachment, PublishInfo
from sessions.hls import MediaTap
from sessions.webhooks.events import WebhookEvent, session_event
from sessions.writes import StoreWrites
from storage import Store, retryable
from storage.models import SessionRecord, TargetRecord

logger = logging.getLogger("ingest.multistream")

#: The session issue a target that cannot be kept connected raises.
ISSUE = "multistream_failed"
#: Event-log kinds, one per engine event kind: ``multistream.connected`` and so on.
EVENT_PREFIX = "multistream."
#: Seconds between tries of a read of the targets that the store refused (locked, busy).
_READ_RETRY = (0.2, 5.0)
#: Seconds between reads of a forwarding session's targets (for targets added, enabled,
#: disabled or deleted while it is live).
RECHECK_INTERVAL = 5.0


class Forwarders:
    """The :class:`~sessions.attachments.AttachmentFactory` of forwarding: one
    :class:`Forwarder` per publish of a known stream. ``settings`` may be replaced (a
    reload): sessions that start afterwards use the new ones."""

    def __init__(
        self,
        store: Store,
        writes: StoreWrites,
        settings: ForwardSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.writes = writes
        self.settings = settings
        self.clock = clock
        #: Seconds between reads of a forwarding session's targets.
        self.recheck_interval = RECHECK_INTERVAL

    def __call__(self, publish: PublishInfo) -> Attachment | None:
        stream_id = publish.decision.stream_id
        if stream_id is None:
            return None
        return Forwarder(self, stream_id, publish.attempt.connection_id)


def entry(stats: TargetStats, missed: int = 0) -> dict[str, Any]:
    """One target's counters as the session's ``multistream`` list keeps them (``missed``:
    media bytes skipped before the engine had the target)."""
    return {
        "target_id": stats.target_id,
        "name": stats.name,
        "status": stats.status.value,
        "connected_seconds": round(stats.connected_seconds, 3),
        "bytes_sent": stats.bytes_sent,
        "reconnects": stats.reconnects,
        "skipped_bytes": stats.skipped_bytes + missed,
        "last_error": stats.last_error,
    }


def _continued(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """A target's entry over the parts of a session continued after reconnects: counters
    summed, the latest status and error; going live again in a new part is a reconnect."""
    merged = dict(now)
    merged["connected_seconds"] = round(
        float(before.get("connected_seconds", 0)) + float(now["connected_seconds"]), 3
    )
    for key in ("bytes_sent", "skipped_bytes", "reconnects"):
        merged[key] = int(before.get(key, 0)) + int(now[key])
    if now["bytes_sent"] > 0:
        merged["reconnects"] += 1
    if merged["last_error"] is None:
        merged["last_error"] = before.get("last_error")
    return merged


class Forwarder:
    """Forwards one publish to its stream's enabled targets (see the module)."""

    def __init__(self, forwarders: Forwarders, stream_id: str, connection_id: int) -> None:
        self._forwarders = forwarders
        self.settings = forwarders.settings
        self.stream_id = stream_id
        self._conn = connection_id
        #: Messages that came before the targets were known (None: no longer kept).
        self._pending: list[MetadataReceived | MediaReceived] | None = []
        self._pending_bytes = 0
        self.engine: Multistream | None = None
        self._record: SessionRecord | None = None
        self._earlier: dict[str, dict[str, Any]] = {}
        self._reading: asyncio.Task[None] | None = None
        #: Each target's last counters, in the targets' order.
        self._stats: dict[str, TargetStats] = {}
        #: Media bytes a target missed before the engine had it (its targets were read
        #: after ``max_buffer`` bytes had come), counted as skipped.
        self._missed: dict[str, int] = {}
        self._issue: dict[str, Any] | None = None
        self._finished = False
        #: The targets being forwarded to, and when they were last read.
        self._forwarding: set[str] = set()
        self._checked = 0.0
        self._recheck: asyncio.Task[None] | None = None

    # -- the attachment -----------------------------------------------------------------

    def metadata(self, event: MetadataReceived) -> None:
        engine = self.engine
        if engine is not None:
            engine.metadata(event)
        elif self._pending is not None:
            self._hold(event, 0)

    def media(self, event: MediaReceived) -> None:
        engine = self.engine
        if engine is not None:
            engine.media(event)
        elif self._pending is not None:
            self._hold(event, len(event.payload))

    def _hold(self, event: MetadataReceived | MediaReceived, size: int) -> None:
        assert self._pending is not None
        self._pending.append(event)
        self._pending_bytes += size
        if self._pending_bytes > self.settings.max_buffer:
            # The targets are still being read and too much waits: the engine takes the
            # stream from here (it keeps its headers); the targets, once known, join at
            # a keyframe, as late joiners do.
            self._start_engine([])

    def opened(self, record: SessionRecord, folder: Path | None) -> MediaTap | None:
        self._record = record
        # A session continued after a reconnect: its targets' counters go on from the
        # earlier parts' (this publish connects to them anew).
        self._earlier = {str(e.get("target_id")): dict(e) for e in record.multistream}
        self._reading = asyncio.ensure_future(self._read_targets())
        return None

    def refresh(self, record: SessionRecord, now: float, sample: bool) -> None:
        engine = self.engine
        if engine is not None:
            for stats in engine.stats():
                self._stats[stats.target_id] = stats
            if (
                sample
                and self._forwarding
                and not self._finished
                and (self._recheck is None or self._recheck.done())
                and now - self._checked >= self._forwarders.recheck_interval
            ):
                self._checked = now
                self._recheck = asyncio.ensure_future(self._read_again(engine))
        self._write(record)

    async def finish(self, record: SessionRecord | None) -> None:
        self._finished = True
        if self._recheck is not None:
            await asyncio.gather(self._recheck, return_exceptions=True)
        reading = self._reading
        if reading is not None and not reading.done():
            # A short session whose targets are still being read: they get what came.
            try:
                async with asyncio.timeout(self.settings.drain_timeout):
                    await asyncio.shield(reading)
            except TimeoutError:
                reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        if self.engine is not None:
            for stats in await self.engine.close():
                self._stats[stats.target_id] = stats
        self._pending = None
        if record is not None:
            self._write(record)

    # -- the targets --------------------------------------------------------------------

    async def _read_targets(self) -> None:
        rows = await self._enabled_targets()
        targets = [target for row in rows or () if (target := self._target(row)) is not None]
        if not targets:
            self._pending = None
            return
        for target in targets:
            self._stats.setdefault(target.id, _connecting(target))
        self._forwarding = {target.id for target in targets}
        self._checked = self._forwarders.clock()
        if self.engine is None:
            self._start_engine(targets)
        else:
            # Read too late for the start of the session: what came before is skipped.
            for target in targets:
                self._missed[target.id] = self.engine.media_bytes
                self.engine.add(target)  # from the next keyframe, with the headers

    async def _read_again(self, engine: Multistream) -> None:
        """Follow the stream's targets while live: add the new, end the gone."""
        try:
            rows = await self._forwarders.store.enabled_targets(self.stream_id)
        except Exception as exc:
            log_event(
                logger, logging.DEBUG, "multistream_targets_unread", stream=self.stream_id,
                session=self._session_id, retrying=True, exc_info=exc,
            )  # fmt: skip
            return  # read again at the next interval
        if self._finished:
            return
        enabled = {row.id: row for row in rows}
        for gone in sorted(self._forwarding - enabled.keys()):
            self._forwarding.discard(gone)
            stats = await engine.remove(gone)
            if stats is not None:
                self._stats[gone] = stats
        for row in rows:
            if row.id not in self._forwarding and (target := self._target(row)) is not None:
                self._forwarding.add(row.id)
                self._missed.pop(row.id, None)
                self._stats[row.id] = _connecting(target)
                engine.add(target)  # from the next keyframe, with the headers

    async def _enabled_targets(self) -> list[TargetRecord] | None:
        """The stream's enabled targets; a read the store refuses (locked, busy) is tried
        again while the publish lasts. None: no answer (the publish ended, or an error
        no retry fixes)."""
        delay, longest = _READ_RETRY
        while True:
            try:
                return await self._forwarders.store.enabled_targets(self.stream_id)
            except Exception as exc:
                log_event(
                    logger,
                    logging.WARNING,
                    "multistream_targets_unread",
                    stream=self.stream_id,
                    session=self._session_id,
                    retrying=retryable(exc) and not self._finished,
                    exc_info=exc,
                )
                if not retryable(exc) or self._finished:
                    return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    def _target(self, row: TargetRecord) -> Target | None:
        try:
            return Target(row.id, row.name, parse_rtmp_url(row.url))
        except ValueError:
            # Checked when stored; say which, never the URL.
            log_event(
                logger,
                logging.ERROR,
                "multistream_target_invalid",
                stream=self.stream_id,
                target=row.id,
                name=row.name,
            )
            return None

    def _start_engine(self, targets: list[Target]) -> None:
        engine = Multistream(targets, self.settings, self)
        engine.start()
        self.engine = engine
        pending, self._pending = self._pending or [], None
        for event in pending:
            if isinstance(event, MediaReceived):
                engine.media(event)
            else:
                engine.metadata(event)

    # -- what happens to the targets ----------------------------------------------------

    @property
    def _session_id(self) -> str | None:
        return self._record.id if self._record is not None else None

    def target_event(self, event: TargetEvent) -> None:
        """The engine's observer: the event log, the log, the issue."""
        stats = event.stats
        target = event.target
        self._stats[target.id] = stats
        kind = event.kind.value
        now = self._forwarders.clock()
        reason = f"{target.name} ({target.id})"
        if event.reason:
            reason += f": {event.reason}"
        record = self._record
        webhook = None
        if record is not None:
            target_data = {
                "id": target.id,
                "name": target.name,
                "status": stats.status.value,
                "reason": event.reason,
            }
            webhook = session_event(
                WebhookEvent(EVENT_PREFIX + kind), record, now, target=target_data
            )
        self._forwarders.writes.event(
            EVENT_PREFIX + kind,
            at=now,
            stream_id=self.stream_id,
            session_id=self._session_id,
            reason=reason,
            webhook=webhook,
        )
        log_event(
            logger,
            logging.INFO
            if kind == "connected" or event.reason == "session ended"
            else logging.WARNING,
            f"multistream_{kind}",
            session=self._session_id,
            stream=self.stream_id,
            conn=self._conn,
            target=target.id,
            name=target.name,
            url=target.url.masked(),
            status=stats.status.value,
            reconnects=stats.reconnects,
            reason=event.reason,
        )
        if stats.status is TargetStatus.FAILED and self._issue is None:
            self._issue = {
                "code": ISSUE,
                "message": f"target {target.name} ({target.id}) could not be kept connected:"
                f" {event.reason or 'failed'}",
                "at": now,
            }

    def _write(self, record: SessionRecord) -> None:
        missed = self._missed
        entries = dict(self._earlier)
        for stats in self._stats.values():
            now = entry(stats, missed.get(stats.target_id, 0))
            before = entries.get(stats.target_id)
            if before is not None:
                now = _continued(before, now)
            entries[stats.target_id] = now
        record.multistream = list(entries.values())
        issue = self._issue
        if issue is not None:
            if not any(i.get("code") == ISSUE for i in record.issues):
                record.issues.append(dict(issue))
            record.is_healthy = False


def _connecting(target: Target) -> TargetStats:
    return TargetStats(
        target_id=target.id,
        name=target.name,
        status=TargetStatus.CONNECTING,
        connected_seconds=0.0,
        bytes_sent=0,
        reconnects=0,
        skipped_bytes=0,
        last_error=None,
        media_bytes=0,
        buffered_bytes=0,
    )
