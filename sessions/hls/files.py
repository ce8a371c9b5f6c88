"""One variant's files: its segments, init segments and playlists in one folder.

The source segmenter decides where segments start and end; a rendition does the same from
the source's cuts. Both hand the writing to a :class:`SegmentFiles`: it opens a
:class:`~.output.SegmentWriter` per segment, names and commits the finished segment
(atomically), writes the fMP4 init segment when the codec parameters change, and lists
the segment in the playlists (:class:`~.playlist.PlaylistWriter`).

A segment or playlist that cannot be written (disk full, I/O error: any ``OSError``) is
skipped, not fatal: the segment is dropped, its temporary file removed, the next one
starts as a discontinuity, and writing goes on; each failure is a
``segment_write_failed`` (or ``playlist_write_failed``) issue, logged with the session
the first time and then at most every :data:`WRITE_FAILURE_LOG_INTERVAL` seconds. A
segment FFmpeg rejects is a ``mux_error`` issue, handled the same way.

With ``resume`` (a session continued after a reconnect) the playlists already in the
folder are read back and continued: segments and init segments are numbered on from the
last listed (none is renamed or reused), and the first new segment follows a
discontinuity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import av

from ingest.logs import log_event

from .output import SegmentWriter, split_fmp4, write_atomic
from .playlist import PlaylistWriter, SegmentInfo
from .templates import SegmentFormat, Templates
from .tracks import IssueLog

__all__ = ["MUX_ERRORS", "TEMPORARY", "WRITE_FAILURE_LOG_INTERVAL", "SegmentFiles"]

logger = logging.getLogger(__name__)

#: What FFmpeg raises for a packet or a container it cannot take.
MUX_ERRORS = (av.FFmpegError, ValueError)
#: The file an MPEG-TS segment is written to until it is complete and renamed.
TEMPORARY = "segment.ts.tmp"
#: Seconds between log lines about one variant's media that cannot be written.
WRITE_FAILURE_LOG_INTERVAL = 10.0


class SegmentFiles:
    """Writes one variant's segments (numbered from 0) and playlists under ``directory``.

    ``label`` names the variant in issue messages and log lines (a rendition's profile);
    the source has none.
    """

    def __init__(
        self,
        directory: Path,
        *,
        window: int,
        keep_all: bool,
        issues: IssueLog,
        clock: Callable[[], float],
        session_id: str | None = None,
        label: str | None = None,
        resume: bool = False,
    ) -> None:
        self.directory = directory
        self.session_id = session_id
        self._label = label
        self._issues = issues
        self._clock = clock
        self._playlist = PlaylistWriter(directory, window=window, keep_all=keep_all)
        self._writer: SegmentWriter | None = None
        #: The open segment's first DTS (ms).
        self.start = 0
        self._end = 0
        self._arrival = 0.0
        self._last_arrival = 0.0
        self._discontinuity = False
        self._next_discontinuity = False
        #: The number the next segment gets.
        self.sequence = 0
        self._init_count = 0
        self._init_uri: str | None = None
        #: Segments and playlists that could not be written, and when that was last logged.
        self.write_failures = 0
        self._failure_logged_at: float | None = None
        self._failures_logged = 0
        self._has_directory = self.make_directory()
        if resume:
            self._resume()

    def _resume(self) -> None:
        """Continue the playlists on disk (a playlist that cannot be read starts over,
        recorded as an issue)."""
        try:
            listed = self._playlist.resume()
        except (OSError, ValueError) as exc:
            self._record("playlist_write_failed", f"cannot continue the playlist: {exc}")
            return
        if not listed:
            return
        self.sequence = max(segment.sequence for segment in listed) + 1
        inits = [_init_number(s.init_uri) for s in listed if s.init_uri is not None]
        self._init_count = max(inits) + 1 if inits else 0
        self._next_discontinuity = True

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    @property
    def opened_discontinuous(self) -> bool:
        """Whether the open segment follows a discontinuity."""
        return self._discontinuity

    @property
    def segments(self) -> list[SegmentInfo]:
        """The segments in the live window."""
        return self._playlist.segments

    def mark_discontinuity(self) -> None:
        """The next segment follows a discontinuity (and gets a new init segment)."""
        self._next_discontinuity = True

    def new_init(self) -> None:
        """The codec parameters changed: the next fMP4 segment gets a new init segment."""
        self._init_uri = None

    # -- segments --------------------------------------------------------------------------

    def open(
        self, segment_format: SegmentFormat, templates: Templates, dts: int, arrival: float
    ) -> bool:
        """Start a segment at ``dts`` (ms) whose first packet arrived at ``arrival``; False
        if it could not be started (the failure is recorded)."""
        if not self._has_directory:
            self._has_directory = self.make_directory()
            if not self._has_directory:
                return False
        try:
            self._writer = SegmentWriter(segment_format, templates, self.directory / TEMPORARY)
        except OSError as exc:
            self.write_failed("segment_write_failed", f"segment {self.sequence}", exc)
            return False
        except MUX_ERRORS as exc:
            self._record("mux_error", f"cannot open segment {self.sequence}: {exc}")
            return False
        self.start = self._end = dts
        self._arrival = arrival
        self._discontinuity = self._next_discontinuity
        if self._next_discontinuity:
            self._init_uri = None
        self._next_discontinuity = False
        return True

    def mux(
        self,
        video: bool,
        data: bytes,
        dts: int,
        pts: int,
        duration: int,
        keyframe: bool,
        arrival: float,
    ) -> None:
        """Add one frame (ms timestamps) to the open segment. A frame FFmpeg or the disk
        refuses drops the segment (recorded); the next one follows a discontinuity."""
        writer = self._writer
        assert writer is not None
        try:
            writer.mux(video, data, dts, pts, duration, keyframe)
        except MUX_ERRORS as exc:
            if isinstance(exc, OSError):
                self.write_failed("segment_write_failed", f"segment {self.sequence}", exc)
            else:
                self._record("mux_error", f"segment {self.sequence}: {exc}")
            writer.abandon()
            self._writer = None
            self._next_discontinuity = True
            return
        if dts + duration > self._end:
            self._end = dts + duration
        self._last_arrival = arrival

    def close(self, done: list[SegmentInfo], end: int | None) -> None:
        """Finish the open segment (if any) where the next one starts, ``end`` (ms), or
        else after its last frame; commit it, list it and append it to ``done``."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            data = writer.close()
            # fMP4 comes back as bytes, (init, media); MPEG-TS is in its temporary file.
            fmp4 = split_fmp4(data) if data is not None else None
        except MUX_ERRORS as exc:
            writer.abandon()
            if isinstance(exc, OSError):
                self.write_failed("segment_write_failed", f"segment {self.sequence}", exc)
            else:
                self._record("mux_error", f"cannot finish segment {self.sequence}: {exc}")
            self._next_discontinuity = True
            return
        if writer.packets == 0:
            writer.discard()
            return
        uri = f"seg_{self.sequence:05d}.{'ts' if fmp4 is None else 'm4s'}"
        try:
            if fmp4 is None:
                size = writer.commit(self.directory / uri)
            else:
                init, media = fmp4
                if self._init_uri is None:
                    name = f"init_{self._init_count}.mp4" if self._init_count else "init.mp4"
                    write_atomic(self.directory / name, init)
                    self._init_count += 1
                    self._init_uri = name
                write_atomic(self.directory / uri, media)
                size = len(media)
        except OSError as exc:
            writer.abandon()
            self.write_failed("segment_write_failed", f"segment {self.sequence}", exc)
            self._next_discontinuity = True
            return
        stop = end if end is not None else self._end
        info = SegmentInfo(
            sequence=self.sequence,
            uri=uri,
            duration=(stop - self.start) / 1000,
            bytes=size,
            first_timestamp=self.start / 1000,
            keyframe_start=True,
            discontinuity=self._discontinuity,
            program_date_time=self._arrival,
            init_uri=self._init_uri if fmp4 is not None else None,
            last_arrival=self._last_arrival,
        )
        self.sequence += 1
        try:
            self._playlist.add(info)
        except OSError as exc:
            self.write_failed("playlist_write_failed", "the playlist", exc)
        done.append(info)

    def finish(self) -> None:
        """End the playlists (``#EXT-X-ENDLIST``), if any segment was listed."""
        if not self.sequence:
            return
        try:
            self._playlist.finish()
        except OSError as exc:
            self.write_failed("playlist_write_failed", "the playlist", exc)

    # -- failures --------------------------------------------------------------------------

    def make_directory(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            what = "the session folder" if self._label is None else "the rendition folder"
            self.write_failed("segment_write_failed", what, exc)
            return False
        return True

    def write_failed(self, code: str, what: str, exc: OSError) -> None:
        """Media that could not be written: an issue every time, a log line the first
        time and then at most every :data:`WRITE_FAILURE_LOG_INTERVAL` seconds."""
        self.write_failures += 1
        error = exc.strerror or str(exc)
        self._record(code, f"cannot write {what}: {error}")
        now = self._clock()
        last = self._failure_logged_at
        if last is not None and now - last < WRITE_FAILURE_LOG_INTERVAL:
            return
        self._failure_logged_at = now
        fields: dict[str, object] = {"session": self.session_id}
        if self._label is not None:
            fields["rendition"] = self._label
        log_event(
            logger,
            logging.ERROR,
            code,
            **fields,
            file=what,
            error=error,
            errno=exc.errno,
            failures=self.write_failures,
            since_last_line=self.write_failures - self._failures_logged,
        )
        self._failures_logged = self.write_failures

    def _record(self, code: str, message: str) -> None:
        if self._label is not None:
            message = f"rendition {self._label}: {message}"
        self._issues.record(code, message)


def _init_number(uri: str) -> int:
    """``init.mp4`` is 0, ``init_<n>.mp4`` is n."""
    stem = uri.removesuffix(".mp4")
    _, _, number = stem.partition("_")
    return int(number) if number.isdigit() else 0
