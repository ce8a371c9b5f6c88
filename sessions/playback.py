"""Where a session's media lives, what a viewer may fetch, and the viewer seconds it earns.

Layout: ``<media_root>/<playback_id>/<session_id>/`` holds one session's segments, its live
playlist ``index.m3u8``, and for a recorded stream ``vod.m3u8`` and ``recording.mp4``. A
session with renditions has each one's files in ``<profile>/`` beside them, and
``master.m3u8`` listing the variants (served at the stream's live URL instead of
``index.m3u8``); see :mod:`sessions.transcode.variants`.
Media is addressed by the stream's ``playback_id`` (random, never the key).

A viewer may fetch a live session's playlist and segments, and a recorded session's.
An ended session that was not recorded keeps its last window for the players still on it
until :mod:`sessions.media_cleanup` deletes it, then is gone (404). Only regular files are
served: a symbolic link in a session's folder, wherever it points, is not (404), and a file
name is one plain name (no separators), so nothing outside the folder can be reached.

Each media segment served (a rendition's too) adds its duration to the session's ``viewer_seconds``
(Cloudflare's viewer seconds), counted in memory and written in batches through the
server's write queue (:class:`~sessions.writes.StoreWrites`).
"""

from __future__ import annotations

import functools
import os
import re
import stat
from pathlib import Path
from typing import Protocol

from ingest.profiles import NAME_PATTERN
from sessions.writes import StoreWrites
from storage import Store
from storage.models import SessionRecord

#: File names a viewer may ask for (no paths, no hidden files).
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\.(m3u8|ts|m4s|mp4)")
#: A rendition's folder: its profile's name (:data:`ingest.profiles.NAME_PATTERN`).
_RENDITION = re.compile(NAME_PATTERN)
LIVE_PLAYLIST = "index.m3u8"
VOD_PLAYLIST = "vod.m3u8"
#: A session with renditions: the master of its live playlists, and (recorded) the
#: source's whole playlist once ``vod.m3u8`` became the master of the whole ones.
MASTER_PLAYLIST = "master.m3u8"
SOURCE_VOD_PLAYLIST = "source.m3u8"
RECORDING = "recording.mp4"

MIME_TYPES = {
    "m3u8": "application/vnd.apple.mpegurl",
    "ts": "video/mp2t",
    "m4s": "video/iso.segment",
    "mp4": "video/mp4",
}


class LiveLookup(Protocol):
    def live_session(self, stream_id: str) -> SessionRecord | None: ...


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def valid_rendition(name: str) -> bool:
    """Whether ``name`` can be a rendition's folder (a profile's name)."""
    return _RENDITION.fullmatch(name) is not None


def playlist_durations(text: str) -> dict[str, float]:
    """Each segment URI of a media playlist with its ``#EXTINF`` duration."""
    durations: dict[str, float] = {}
    seconds: float | None = None
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            try:
                seconds = float(line[8:].split(",", 1)[0])
            except ValueError:
                seconds = None
        elif line and not line.startswith("#") and seconds is not None:
            durations[line] = seconds
            seconds = None
    return durations


def is_regular_file(path: Path) -> bool:
    """Whether *path* is a regular file itself (a symbolic link is not, wherever it
    points)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def read_regular_file(path: Path) -> str | None:
    """The text of *path* if it is a regular file (never through a symbolic link)."""
    try:
        # O_NONBLOCK: a FIFO in its place must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, encoding="utf-8", errors="replace") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        return fh.read()


def rewrite_playlist(text: str, prefix: str) -> str:
    """The playlist with every relative URI (media lines and ``URI="..."``) under
    ``prefix/``, so the stream-level URL can serve a session's playlist."""
    lines = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            line = f"{prefix}/{line}"
        elif 'URI="' in line:
            line = re.sub(r'URI="([^"/:]+)"', lambda m: f'URI="{prefix}/{m.group(1)}"', line)
        lines.append(line)
    return "\n".join(lines) + "\n"


class Playback:
    """Answers the playback routes from the store, the live sessions and the disk."""

    def __init__(
        self, store: Store, live: LiveLookup, media_root: Path, writes: StoreWrites
    ) -> None:
        self.store = store
        self.writes = writes
        self.live = live
        self.media_root = media_root
        self._durations: dict[str, dict[str, float]] = {}
        self._viewer_seconds: dict[str, float] = {}

    def session_dir(self, playback_id: str, session_id: str) -> Path:
        return self.media_root / playback_id / session_id

    async def live_playlist(self, playback_id: str) -> str | None:
        """The live session's playlist, with URIs pointing into its session folder."""
        stream = await self.store.get_stream_by_playback_id(playback_id)
        if stream is None:
            return None
        session = self.live.live_session(stream.id)
        if session is None:
            return None
        folder = self.session_dir(playback_id, session.id)
        text = read_regular_file(folder / MASTER_PLAYLIST)
        if text is None:
            text = read_regular_file(folder / LIVE_PLAYLIST)
        return None if text is None else rewrite_playlist(text, session.id)

    async def session_file(
        self,
        playback_id: str,
        session_id: str,
        name: str,
        *,
        recording: bool,
        rendition: str | None = None,
    ) -> tuple[Path, SessionRecord] | None:
        """A file of a session a viewer may see (of one of its renditions, in that
        rendition's folder): a live one's or an ended one's still on disk
        (``recording=False``), or a recorded one's; None for anything else."""
        if not valid_name(name) or (rendition is not None and not valid_rendition(rendition)):
            return None
        stream = await self.store.get_stream_by_playback_id(playback_id)
        if stream is None:
            return None
        live = self.live.live_session(stream.id)
        session = (
            live
            if live is not None and live.id == session_id
            else await self.store.get_session(session_id)
        )
        if session is None or session.stream_id != stream.id:
            return None
        if recording and not session.record:
            return None
        folder = self.session_dir(playback_id, session_id)
        if rendition is not None:
            folder = folder / rendition
            if folder.is_symlink():  # a rendition's folder is never reached through a link
                return None
        path = folder / name
        if not is_regular_file(path):
            return None
        return path, session

    async def count_view(self, session_id: str, name: str, folder: Path | None = None) -> float:
        """Add the segment's duration to the session's viewer seconds; returns it. A
        rendition's segment (its rendition's ``folder`` given) counts as the source's
        does: its duration is read from the rendition's playlists."""
        if folder is not None:
            return self._count(session_id, self._rendition_duration(session_id, folder, name))
        durations = self._durations.get(session_id)
        if durations is None or name not in durations:
            segments = await self.store.list_segments(session_id)
            durations = {s["uri"]: float(s["duration"]) for s in segments}
            self._durations[session_id] = durations
        return self._count(session_id, durations.get(name, 0.0))

    def _rendition_duration(self, session_id: str, folder: Path, name: str) -> float:
        key = f"{session_id}/{folder.name}"
        durations = self._durations.get(key)
        if durations is None or name not in durations:
            durations = {}
            for playlist in (LIVE_PLAYLIST, VOD_PLAYLIST):
                durations.update(playlist_durations(read_regular_file(folder / playlist) or ""))
            self._durations[key] = durations
        return durations.get(name, 0.0)

    def _count(self, session_id: str, seconds: float) -> float:
        if seconds:
            self._viewer_seconds[session_id] = self._viewer_seconds.get(session_id, 0.0) + seconds
        return seconds

    def flush(self) -> None:
        """Queue a write of the viewer seconds counted since the last flush."""
        pending, self._viewer_seconds = self._viewer_seconds, {}
        for session_id, seconds in pending.items():
            self.writes.put(
                f"viewer seconds of session {session_id}",
                functools.partial(self.store.add_viewer_seconds, session_id, seconds),
            )

    def forget(self, session_id: str) -> None:
        """Drop the cached segment durations of a session that ended."""
        self._durations.pop(session_id, None)
        prefix = f"{session_id}/"
        for key in [k for k in self._durations if k.startswith(prefix)]:
            del self._durations[key]
