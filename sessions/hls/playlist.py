"""HLS media playlists (RFC 8216) for one session, and the segment records they list.

``index.m3u8`` is the live playlist: the last ``window`` segments, a media sequence and a
discontinuity sequence that count what has slid out, a program date-time on every
segment, ``#EXT-X-ENDLIST`` once the session has finished. Segments (and init segments)
that leave the window are deleted unless ``keep_all``; then ``vod.m3u8`` lists every
segment (an EVENT playlist while live, VOD once finished). Files are replaced atomically.
A writer can pick up the playlists an earlier one left unfinished (:meth:`PlaylistWriter.
resume`: the session continued after its publisher reconnected).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .output import write_atomic

__all__ = ["PlaylistWriter", "SegmentInfo", "format_date_time", "parse_date_time", "read_playlist"]

_ROUNDING_SLACK = 0.005
_SEGMENT_NUMBER = re.compile(r"seg_(\d+)\.")
_MAP_URI = re.compile(r'URI="([^"]*)"')


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


def parse_date_time(text: str) -> float:
    """:func:`format_date_time` back to epoch seconds."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class ListedPlaylist:
    """What a media playlist this module wrote lists."""

    media_sequence: int
    discontinuity_sequence: int
    target: int
    segments: list[SegmentInfo]


def read_playlist(text: str) -> ListedPlaylist:
    """Read back a playlist :class:`PlaylistWriter` wrote (``first_timestamp``,
    ``bytes`` and ``last_arrival`` are not in it: 0). Raises ``ValueError`` for one it
    did not write."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an M3U8 playlist")
    media_sequence = discontinuity_sequence = 0
    target = 1
    segments: list[SegmentInfo] = []
    discontinuity = False
    init: str | None = None
    date_time = 0.0
    duration: float | None = None
    for line in lines[1:]:
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-MEDIA-SEQUENCE":
            media_sequence = int(value)
        elif tag == "#EXT-X-DISCONTINUITY-SEQUENCE":
            discontinuity_sequence = int(value)
        elif tag == "#EXT-X-TARGETDURATION":
            target = int(value)
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-MAP":
            found = _MAP_URI.search(value)
            init = found.group(1) if found else None
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            date_time = parse_date_time(value)
        elif tag == "#EXTINF":
            duration = float(value.split(",", 1)[0])
        elif not line.startswith("#"):
            if duration is None:
                raise ValueError(f"segment {line!r} has no #EXTINF")
            number = _SEGMENT_NUMBER.match(line)
            sequence = int(number.group(1)) if number else media_sequence + len(segments)
            segments.append(
                SegmentInfo(
                    sequence=sequence,
                    uri=line,
                    duration=duration,
                    bytes=0,
                    first_timestamp=0.0,
                    keyframe_start=True,
                    discontinuity=discontinuity,
                    program_date_time=date_time,
                    init_uri=init,
                )
            )
            discontinuity, duration = False, None
    return ListedPlaylist(media_sequence, discontinuity_sequence, target, segments)


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

    def resume(self) -> list[SegmentInfo]:
        """Pick up the playlists in the folder (those of the session's earlier part):
        the live window, its discontinuity count and target, and (``keep_all``) every
        segment; returns the segments listed (none if there is no playlist)."""
        try:
            live = read_playlist((self._directory / "index.m3u8").read_text())
        except FileNotFoundError:
            return []
        self._live = deque(live.segments)
        self._discontinuity_sequence = live.discontinuity_sequence
        self._target = max(self._target, live.target)
        listed = list(live.segments)
        if self._keep_all:
            try:
                vod = read_playlist((self._directory / "vod.m3u8").read_text())
            except FileNotFoundError:
                vod = live
            self._all = list(vod.segments)
            self._target = max(self._target, vod.target)
            listed += vod.segments
        return listed

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
