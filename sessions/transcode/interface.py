"""What the session side gives the transcoder and gets back: small, typed, picklable.

The input is what the source segmenter already has for each session (see
:class:`sessions.hls.segmenter.MediaTap`): each track's configuration, every frame placed
on the session timeline (milliseconds), and the start of every source segment (a
:class:`Cut`). Nothing is parsed twice: the FLV stream is parsed once, on the event loop,
and the segmenter's thread hands the frames over (:class:`~.tap.RenditionsTap`).

The output is a :class:`RenditionsReport`, per profile and in all, and the finished
:class:`RenditionSegment` of every rendition, for the ledger.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from ingest.profiles import Profile
from sessions.hls import SegmentInfo

__all__ = [
    "Cut",
    "FeedItem",
    "Gap",
    "MediaFrame",
    "ProfileReport",
    "RenditionSegment",
    "Renditions",
    "RenditionsReport",
    "RenditionsTarget",
    "SourceInfo",
    "TrackConfig",
    "Transcoder",
]


# --- input --------------------------------------------------------------------------------


class TrackConfig(NamedTuple):
    """A track's (new) configuration: the parsed record (the video decoder's extradata)
    and the message it came in (what an audio template is made of)."""

    video: bool
    codec: str
    config: bytes
    tag: bytes


class MediaFrame(NamedTuple):
    """One coded frame on the session timeline (ms), with the wall-clock time it arrived
    (how far behind real time the renditions are is measured from it). ``tag``, the
    message it came in, is sent with the first audio frame after a configuration."""

    video: bool
    dts: int
    pts: int
    data: bytes
    keyframe: bool
    arrival: float
    tag: bytes | None = None


class Cut(NamedTuple):
    """Source segment ``sequence`` starts at ``dts`` (ms) with the video keyframe that
    follows; every rendition starts a segment at that frame too."""

    sequence: int
    dts: int
    discontinuity: bool
    arrival: float


class Gap(NamedTuple):
    """``frames`` video frames were lost before what follows (the queue was full): the
    renditions resume at the next keyframe."""

    frames: int


FeedItem = TrackConfig | MediaFrame | Cut | Gap


@dataclass(frozen=True, slots=True)
class RenditionsTarget:
    """Where a session's renditions go and how their playlists are kept: each one in
    ``folder/<profile name>/``, beside the source's files."""

    session_id: str
    folder: Path
    window: int = 6
    #: Keep every segment and write ``vod.m3u8`` (a recorded stream).
    record: bool = False
    #: The configured ``[hls] segment_format``: renditions are MPEG-TS (H.264 with AAC
    #: or MP3, other audio made AAC) unless it is "fmp4".
    segment_format: Literal["auto", "mpegts", "fmp4"] = "auto"
    #: The session continues after a reconnect: each rendition continues the playlists
    #: and segment numbers of its folder (a discontinuity first) instead of starting over.
    resume: bool = False


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the session knows of its source when the renditions start (0 or None:
    unknown). The picture size is taken from the decoded video in any case."""

    width: int = 0
    height: int = 0
    fps: float = 0.0


# --- output -------------------------------------------------------------------------------

ProfileState = Literal["pending", "running", "skipped", "failed", "ended"]


@dataclass(slots=True)
class ProfileReport:
    """One profile's rendition: ``pending`` until the source's picture size is known,
    then ``running`` or ``skipped`` (larger than the source); ``failed`` or ``ended``."""

    name: str
    width: int
    height: int
    bitrate: int
    fps: float
    state: ProfileState = "pending"
    segments: int = 0
    segments_duration: float = 0.0
    bytes: int = 0
    #: Frames encoded.
    frames: int = 0
    #: Source frames this rendition did not get because the renditions were behind real
    #: time (or their queue full) and dropped them to the next keyframe.
    dropped_frames: int = 0
    #: The rendition's RFC 6381 codecs (``avc1.64001e,mp4a.40.2``) once it has encoded.
    codecs: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Livepeer's per-profile counters, as the ledger keeps them."""
        return {
            "name": self.name,
            "segments": self.segments,
            "bytes": self.bytes,
            "frames": self.frames,
            "dropped_frames": self.dropped_frames,
        }


@dataclass(slots=True)
class RenditionsReport:
    """Where one session's renditions stand."""

    profiles: list[ProfileReport]
    #: Coded problems ({"code", "message", "at"}): transcode_profile_skipped,
    #: transcode_realtime, transcode_failed, segment_write_failed, ...
    issues: list[dict[str, Any]] = field(default_factory=list)
    #: Behind real time by more than max_lag, dropping frames, right now.
    lagging: bool = False
    #: The transcoder of this session stopped (its process died, or it raised).
    failed: bool = False
    finished: bool = False

    @property
    def transcoded_segments(self) -> int:
        """Rendition segments written (every profile's, as on disk)."""
        return sum(p.segments for p in self.profiles)

    @property
    def transcoded_segments_duration(self) -> float:
        return round(sum(p.segments_duration for p in self.profiles), 6)

    @property
    def transcoded_bytes(self) -> int:
        """Bytes of every rendition segment written: the outgoing bytes."""
        return sum(p.bytes for p in self.profiles)

    @property
    def produced(self) -> list[ProfileReport]:
        """The profiles that made at least one segment (the ledger's ``profiles``)."""
        return [p for p in self.profiles if p.segments]


class RenditionSegment(NamedTuple):
    """A finished rendition segment: its profile and its record (URI relative to the
    rendition's folder)."""

    profile: str
    info: SegmentInfo


# --- the interface the session side calls -------------------------------------------------


class Renditions(Protocol):
    """One session's renditions."""

    def feed(self, items: Sequence[FeedItem]) -> None:
        """Hand over media, in order (any thread, one at a time; never blocks: when the
        transcoder is too far behind, frames are dropped to the next keyframe)."""
        ...

    def report(self) -> RenditionsReport:
        """The counters now (a copy)."""
        ...

    def take_segments(self) -> list[RenditionSegment]:
        """The rendition segments finished since the last call."""
        ...

    def finish(self) -> concurrent.futures.Future[RenditionsReport]:
        """No more media: the last segments are closed and the playlists ended; the
        future gives the final report (never an exception)."""
        ...


class Transcoder(Protocol):
    """Makes the renditions of many sessions (in worker processes)."""

    def start(
        self,
        target: RenditionsTarget,
        profiles: Sequence[Profile],
        source: SourceInfo | None = None,
    ) -> Renditions: ...

    def close(self) -> None:
        """Stop the worker processes (sessions not finished end as they are)."""
        ...
