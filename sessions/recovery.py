"""What outlives a session's publish: crash recovery, recordings and media no one plays.

At start (and when a worker process dies), the sessions a crash left open are ended as
``server_restart``, their playlists closed and their half-written files removed; the
recordings left ``waiting`` are made again; the media folders no one may play are
deleted. A recorded session's MP4 is made once it ends, a few at a time, and recordings
past ``[hls] retention_days`` are swept. The session manager owns one :class:`Recovery`
and hands it this work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ingest.logs import log_event
from sessions.media_cleanup import MediaExpiry, SessionFolder, session_folders, sweep_orphans
from sessions.recording import (
    REMUX_CONCURRENCY,
    close_playlists,
    delete_media,
    remove_partial_files,
)
from sessions.segmenting import MediaSettings
from sessions.webhooks.events import WebhookEvent, session_event
from sessions.writes import StoreWrites
from storage import Store
from storage.models import EndReason, SessionRecord

#: The session manager's logger: these lines are its work, handed over.
logger = logging.getLogger("sessions.manager")

#: Runs a coroutine in the background, the session manager's way (its close waits for it).
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class Recovery:
    """The session manager's work on sessions that are over (see the module)."""

    def __init__(
        self, store: Store, writes: StoreWrites, media: MediaSettings | None, spawn: Spawn
    ) -> None:
        self.store = store
        self.writes = writes
        self.media = media
        self._spawn = spawn
        #: Unrecorded sessions' media, deleted once their players are done.
        self.expiry = MediaExpiry(media) if media is not None else None
        self._remuxing = asyncio.Semaphore(REMUX_CONCURRENCY)
        self._stopped = False
        #: The sweep of orphaned media at start, while it runs.
        self._sweeping: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Begin no more recordings of the ones a crash left; stop the sweep at start
        (it may be waiting for writes a failing store does not take)."""
        self._stopped = True
        if self._sweeping is not None:
            self._sweeping.cancel()

    async def recover(self, ids: Sequence[str] | None, *, now: float) -> list[SessionRecord]:
        """End as ``server_restart`` the sessions still live in the store (all, or those of
        ``ids``: a worker process died), close their playlists and make their recordings
        in the background; at start (all), also every recording a crash left
        ``waiting`` (killed while making it, or before)."""
        recovered = await self.writes.call(
            "close sessions left open",
            lambda: self.store.close_open_sessions(
                reason=EndReason.SERVER_RESTART, now=now, ids=ids, event=WebhookEvent.STREAM_IDLE
            ),
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
            await_recording(record, self.media, playback_id)
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
                if self._stopped:
                    return
                playback_id = owners.get(record.stream_id)
                if playback_id is None:
                    continue
                log_event(logger, logging.INFO, "recording_resumed", session=record.id)
                await_recording(record, media, playback_id)
                await self.make_recording(media, media.folder(playback_id, record.id), record)

        await asyncio.gather(*(run() for _ in range(REMUX_CONCURRENCY)))

    async def sweep_orphans(self) -> None:
        """List the media folders now (before publishers are accepted), and delete in the
        background those no one may play."""
        if self.media is None:
            return
        loop = asyncio.get_running_loop()
        folders = await loop.run_in_executor(self.media.executor, session_folders, self.media.root)
        self._sweeping = self._spawn(self._sweep_orphans(self.media, folders))

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

    async def sweep_recordings(self, days: int, *, now: float) -> int:
        """Delete recordings of sessions that ended more than ``days`` days ago; returns
        once the ledger says so (their writes landed)."""
        if self.media is None or days <= 0:
            return 0
        cutoff = now - days * 86400
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

    async def make_recording(
        self, settings: MediaSettings, folder: Path, record: SessionRecord
    ) -> None:
        """Make the session's MP4 (a few at a time), then save its recording status."""
        try:
            async with self._remuxing:
                await settings.remux(folder)
        except Exception as exc:
            record.recording_status = "failed"
            record.err_message = record.err_message or f"recording: {exc}"
            log_event(logger, logging.ERROR, "recording_failed", session=record.id, error=str(exc))
            event = WebhookEvent.RECORDING_FAILED
        else:
            record.recording_status = "ready"
            log_event(logger, logging.INFO, "recording_ready", session=record.id)
            event = WebhookEvent.RECORDING_READY
        self._save(record, event)

    def _save(self, record: SessionRecord, event: WebhookEvent | None = None) -> None:
        """Queue a write of the session's row as it is when the write runs (with the
        webhook ``event`` it causes, in the same transaction)."""
        outbox = [] if event is None else [session_event(event, record, time.time())]
        self.writes.put(
            f"save session {record.id}",
            lambda: self.store.save_sessions([record], outbox=outbox),
        )


def await_recording(record: SessionRecord, settings: MediaSettings, playback_id: str) -> None:
    """Mark the session's recording as on its way, with the URLs it will have."""
    record.recording_status = "waiting"
    record.recording_url = settings.recording_url(playback_id, record.id)
    record.mp4_url = settings.mp4_url(playback_id, record.id)
