"""Renditions: H.264 encodes of a live session's video at other sizes, beside the source.

Per session the source video is decoded once (H.264, HEVC, AV1, VP9), scaled once per
profile and encoded with libx264 (or h264_nvenc); the audio is copied (or made AAC once).
Every rendition has a keyframe, and starts a segment, where the source's segments start,
so players switch between them cleanly. The work runs in worker processes
(:class:`TranscodePool`), fed through a bounded queue; the session side sees the small
interface of :mod:`.interface` (:class:`Transcoder`, :class:`Renditions`), and feeds it
from the source segmenter with :class:`RenditionsTap`. A session gets its renditions
through :mod:`.attachment` (the :class:`~.attachment.RenditionsFactory` the server
builds), which also keeps the master playlists (:mod:`.variants`).
"""

from .interface import (
    Cut,
    FeedItem,
    Gap,
    MediaFrame,
    ProfileReport,
    Renditions,
    RenditionSegment,
    RenditionsReport,
    RenditionsTarget,
    SourceInfo,
    TrackConfig,
    Transcoder,
)
from .ladder import EngineSettings, Ladder

__all__ = [
    "Cut",
    "EngineSettings",
    "FeedItem",
    "Gap",
    "Ladder",
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
