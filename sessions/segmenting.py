"""One session's media output: its HLS segmenter and, for a recorded stream, its recording.

The session manager owns one :class:`SessionMedia` per session when HLS is on. Media
messages are handed to a :class:`~sessions.hls.SegmenterWorker` (PyAV and disk work run
in the shared executor, never on the event loop, all sessions' waiting media in one job
through the manager's :class:`~sessions.hls.HandOver`); finished segments come back as
:class:`~sessions.hls.SegmentInfo` for the ledger; at the end the last segment is closed,
the playlists get ``#EXT-X-ENDLIST``, and a recorded session's MP4 is made in the
background.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sessions.hls import HandOver, MediaTap, Segmenter, SegmenterWorker, SegmentInfo
from sessions.playback import RECORDING, VOD_PLAYLIST
from sessions.recording import remux_to_mp4


@dataclass(frozen=True)
class MediaSettings:
    root: Path
    executor: concurrent.futures.Executor
    #: Base of the playback URLs, e.g. "http://host:8080".
    public_url: str
    target_duration: float = 2.0
    segment_format: Literal["auto", "mpegts", "fmp4"] = "auto"
    window: int = 6
    #: Most seconds an unrecorded session's last window stays on disk after it ends
    #: (see :mod:`sessions.media_cleanup`).
    max_linger: float = 30.0

    def folder(self, playback_id: str, session_id: str) -> Path:
        return self.root / playback_id / session_id

    def recording_url(self, playback_id: str, session_id: str) -> str:
        return f"{self.public_url}/recordings/{playback_id}/{session_id}/{VOD_PLAYLIST}"

    def mp4_url(self, playback_id: str, session_id: str) -> str:
        return f"{self.public_url}/recordings/{playback_id}/{session_id}/{RECORDING}"

    async def remux(self, folder: Path) -> None:
        """Make ``recording.mp4`` in the executor."""
        await asyncio.get_running_loop().run_in_executor(self.executor, remux_to_mp4, folder)


class SessionMedia:
    """The segmenter of one live session (with ``resume``, of the part of a session that
    follows a reconnect: it continues the playlists in the session's folder)."""

    def __init__(
        self,
        settings: MediaSettings,
        handover: HandOver,
        playback_id: str,
        session_id: str,
        *,
        record: bool,
        on_segments: Callable[[list[SegmentInfo]], None],
        tap: MediaTap | None = None,
        resume: bool = False,
    ) -> None:
        self.settings = settings
        self.playback_id = playback_id
        self.folder = settings.folder(playback_id, session_id)
        self.segmenter = Segmenter(
            self.folder,
            target_duration=settings.target_duration,
            segment_format=settings.segment_format,
            window=settings.window,
            keep_all=record,
            session_id=session_id,
            tap=tap,
            resume=resume,
        )
        self.worker = SegmenterWorker(self.segmenter, handover, on_segments)
        #: Hands one media message to the segmenter (per message: the worker's own method,
        #: no call in between).
        self.feed = self.worker.feed

    async def finish(self, *, end: bool = True) -> None:
        """Close the last segment and the playlists; without ``end`` the playlists stay
        open (no ``#EXT-X-ENDLIST``: the session waits for a reconnect)."""
        await self.worker.finish(end=end)
