"""HLS media playlists (RFC 8216) for one session, and the segment records they list.

``index.m3u8`` is the live playlist: the last ``window`` segments, a media sequence and a
discontinuity sequence that count what has slid out, a program date-time on every
segment, ``#EXT-X-ENDLIST`` once the session has finished. Segments (and init segments)
that leave the window are deleted unless ``keep_all``; then ``vod.m3u8`` lists every
segment (an EVENT playlist while live, VOD once finished). Files are replaced atomically.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .output import write_atomic

__all__ = ["PlaylistWriter", "SegmentInfo", "format_date_time"]

_ROUNDING_SLACK = 0.005


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One finished media segment.

    ``duration`` runs from this segment's first DTS to the next one's (for the last,
    to its last packet's DTS plus a frame). ``first_timestamp`` is on the session's
    rebased media timeline; ``program_date_time`` is the wall clock (epoch seconds) when
    its first packet arrived. ``init_uri`` names the fMP4 init segment (``None`` for TS).
    """

    sequence: int
    uri: str
    duration: float
    bytes: int
    first_timestamp: float
    keyframe_start: bool
    discontinuity: bool
    program_date_time: float
    init_uri: str | None = None
    #: Wall clock (epoch seconds) when its last packet arrived.
    last_arrival: float = 0.0


def format_date_time(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds, as ``#EXT-X-PROGRAM-DATE-TIME`` wants it."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class PlaylistWriter:
    """Keeps the live window and writes ``index.m3u8`` (and ``vod.m3u8``)."""

    def __init__(self, directory: Path, *, window: int, keep_all: bool) -> None:
        self._directory = directory
        self._window = max(1, window)
        self._keep_all = keep_all
        self._live: deque[SegmentInfo] = deque()
        self._all: list[SegmentInfo] = []
        self._target = 1
        self._discontinuity_sequence = 0
        self._finished = False
        #: Each listed segment's date-time, EXTINF and URI lines, rendered once (both
        #: playlists are rewritten on every segment; formatting dates was most of it).
        self._entries: dict[int, str] = {}

    @property
    def segments(self) -> list[SegmentInfo]:
        """The segments in the live window."""
        return list(self._live)

    def add(self, segment: SegmentInfo) -> None:
        """List a finished segment (slides the window, deletes what leaves it)."""
        # Ceiling of the longest segment, forgiving the millisecond rounding of RTMP
        # timestamps (5.001 s still fits a target of 5: RFC 8216 rounds EXTINF values).
        self._target = max(self._target, math.ceil(segment.duration - _ROUNDING_SLACK))
        self._live.append(segment)
        if self._keep_all:
            self._all.append(segment)
        while len(self._live) > self._window:
            gone = self._live.popleft()
            if gone.discontinuity:
                self._discontinuity_sequence += 1
            if not self._keep_all:
                self._entries.pop(gone.sequence, None)
                self._delete(gone)
        self.write()

    def finish(self) -> None:
        """Mark the playlists ended and rewrite them."""
        self._finished = True
        self.write()

    def write(self) -> None:
        if not self._live and not self._finished:
            return
        write_atomic(self._directory / "index.m3u8", self.render_live())
        if self._keep_all:
            write_atomic(self._directory / "vod.m3u8", self.render_vod())

    def render_live(self) -> str:
        segments = list(self._live)
        sequence = segments[0].sequence if segments else 0
        return self._render(segments, sequence, self._discontinuity_sequence, None)

    def render_vod(self) -> str:
        kind = "VOD" if self._finished else "EVENT"
        return self._render(self._all, 0, 0, kind)

    def _render(
        self,
        segments: list[SegmentInfo],
        media_sequence: int,
        discontinuity_sequence: int,
        playlist_type: str | None,
    ) -> str:
        fmp4 = any(segment.init_uri is not None for segment in segments)
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{7 if fmp4 else 3}",
            f"#EXT-X-TARGETDURATION:{self._target}",
            f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
        ]
        if discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
        if playlist_type is not None:
            lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist_type}")
        init: str | None = None
        for segment in segments:
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if segment.init_uri is not None and segment.init_uri != init:
                lines.append(f'#EXT-X-MAP:URI="{segment.init_uri}"')
            init = segment.init_uri
            entry = self._entries.get(segment.sequence)
            if entry is None:
                entry = self._entries[segment.sequence] = (
                    f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(segment.program_date_time)}\n"
                    f"#EXTINF:{segment.duration:.3f},\n{segment.uri}"
                )
            lines.append(entry)
        if self._finished:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _delete(self, gone: SegmentInfo) -> None:
        (self._directory / gone.uri).unlink(missing_ok=True)
        init = gone.init_uri
        if init is not None and all(segment.init_uri != init for segment in self._live):
            (self._directory / init).unlink(missing_ok=True)
