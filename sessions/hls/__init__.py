"""HLS output for live sessions: stream-copied MPEG-TS or fMP4 segments and playlists.

:class:`Segmenter` is the synchronous core (one per session), :class:`SegmenterWorker`
runs it in an executor so the event loop never waits on PyAV or the disk, and one
:class:`HandOver` carries every session's waiting media to the executor together.
"""

from .playlist import SegmentInfo
from .segmenter import MediaTap, Packets, Segmenter
from .worker import HandOver, SegmenterWorker

__all__ = ["HandOver", "MediaTap", "Packets", "SegmentInfo", "Segmenter", "SegmenterWorker"]
