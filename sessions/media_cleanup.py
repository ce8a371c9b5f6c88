"""Media no one will play any more: an unrecorded session's last window once its players
are done with it, and, at start, the folders a crash left behind.

An unrecorded session keeps only its live window on disk (older segments are deleted as
they leave it). When it ends, a player that loaded the final playlist still plays what that
lists, from wherever it was, and reloads it up to a target duration late; so the folder is
deleted :func:`linger` seconds after the end (the playlist's seconds plus
``target_duration``, never more than ``[hls] max_linger``) by :class:`MediaExpiry`, and
what is still waiting when the server stops is deleted as it stops.

A crash forgets those deletions. So at start the process that recovers crashed sessions
lists ``<root>/<playback_id>/<session_id>/`` (:func:`session_folders`) before it accepts
any publisher, and :func:`sweep_orphans` deletes, of that list, the folders no one may
play: sessions that ended unrecorded, recordings already deleted, and sessions the ledger
does not know (those holding a recording's files are kept and counted: the ledger may have
been restored from an older copy). Live sessions and recordings stay; sessions that start
after the listing are never in it. A playback folder whose stream no longer exists is
removed once empty (a live stream's stays: one of its sessions may be creating a folder
in it at that moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ingest.logs import log_event
from sessions.playback import LIVE_PLAYLIST, RECORDING, VOD_PLAYLIST
from sessions.recording import delete_media
from sessions.segmenting import MediaSettings
from storage import Store
from storage.models import SessionRecord

logger = logging.getLogger("sessions.media_cleanup")

_EXTINF = "#EXTINF:"


def listed_seconds(folder: Path) -> float:
    """Seconds of media the folder's live playlist lists (0 without one)."""
    try:
        text = (folder / LIVE_PLAYLIST).read_text()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(_EXTINF):
            with contextlib.suppress(ValueError):
                total += float(line[len(_EXTINF) :].split(",", 1)[0])
    return total


def linger(folder: Path, settings: MediaSettings) -> float:
    """Seconds an ended unrecorded session's folder is kept for the players still on it."""
    return min(settings.max_linger, listed_seconds(folder) + settings.target_duration)


class MediaExpiry:
    """Deletes ended unrecorded sessions' folders once their players are done."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self._timers: dict[Path, asyncio.TimerHandle] = {}
        self._deleting: set[asyncio.Future[None]] = set()

    @property
    def pending(self) -> int:
        """Folders waiting for their delay to pass."""
        return len(self._timers)

    def schedule(self, folder: Path) -> float:
        """Delete ``folder`` after :func:`linger` seconds; returns them."""
        delay = linger(folder, self.settings)
        old = self._timers.pop(folder, None)
        if old is not None:
            old.cancel()
        self._timers[folder] = asyncio.get_running_loop().call_later(delay, self._delete, folder)
        return delay

    def _delete(self, folder: Path) -> None:
        self._timers.pop(folder, None)
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self.settings.executor, delete_media, folder)
        self._deleting.add(done)
        done.add_done_callback(self._deleting.discard)
        log_event(logger, logging.DEBUG, "media_expired", session=folder.name)

    async def close(self) -> None:
        """Delete at once what is still waiting (a stopped server has no players), and
        return once done."""
        for folder, timer in list(self._timers.items()):
            timer.cancel()
            self._delete(folder)
        while self._deleting:
            await asyncio.gather(*list(self._deleting), return_exceptions=True)


@dataclass(frozen=True, slots=True)
class SessionFolder:
    playback_id: str
    session_id: str
    path: Path
    #: Whether it holds a recording's files (``vod.m3u8`` or ``recording.mp4``).
    recording: bool


def _is_session_id(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def session_folders(root: Path) -> list[SessionFolder]:
    """Every ``<root>/<playback_id>/<session_id>/`` (a session id is a UUID: anything else
    there is not ours and is left alone). Run it in a worker thread."""
    found: list[SessionFolder] = []
    try:
        streams = [entry for entry in os.scandir(root) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return found
    for stream in streams:
        try:
            entries = list(os.scandir(stream.path))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or not _is_session_id(entry.name):
                continue
            path = Path(entry.path)
            recording = (path / VOD_PLAYLIST).exists() or (path / RECORDING).exists()
            found.append(SessionFolder(stream.name, entry.name, path, recording))
    return found


def _kept(session: SessionRecord) -> bool:
    """Whether a session the ledger knows may still be played: live, or recorded and
    its recording not deleted."""
    return session.status == "live" or (session.record and session.recording_status != "deleted")


@dataclass(frozen=True, slots=True)
class Sweep:
    #: Session folders deleted.
    removed: int
    #: Folders of sessions the ledger does not know, kept because they hold a recording.
    unknown_recordings: int


async def sweep_orphans(
    store: Store, settings: MediaSettings, folders: list[SessionFolder]
) -> Sweep:
    """Delete those of ``folders`` no one may play (see the module's docstring)."""
    sessions = {s.id: s for s in await store.get_sessions(f.session_id for f in folders)}
    owners = await store.playback_ids({s.stream_id for s in sessions.values()})
    doomed: list[Path] = []
    unknown_recordings = 0
    for folder in folders:
        session = sessions.get(folder.session_id)
        if session is None or owners.get(session.stream_id) != folder.playback_id:
            if folder.recording:
                unknown_recordings += 1
            else:
                doomed.append(folder.path)
        elif not _kept(session):
            doomed.append(folder.path)
    gone = []
    for playback_id in {f.playback_id for f in folders}:
        if await store.get_stream_by_playback_id(playback_id) is None:
            gone.append(settings.root / playback_id)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(settings.executor, _remove, doomed, gone)
    return Sweep(len(doomed), unknown_recordings)


def _remove(folders: Iterable[Path], streams: Iterable[Path]) -> None:
    for folder in folders:
        delete_media(folder)
    for stream in streams:
        with contextlib.suppress(OSError):
            stream.rmdir()
