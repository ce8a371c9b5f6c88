"""Forwarding a live stream to other RTMP servers (multistream targets): YouTube, Twitch,
another ingest server, over ``rtmp://`` or ``rtmps://``.

:class:`Multistream` takes one live stream's messages and keeps one connection per
:class:`Target`, through the core's client role (:mod:`ingest.rtmp.client`) over asyncio.
Each target gets the source's FLV tags unchanged and in order (metadata and sequence
headers first; a target that joins late or connects again starts at a keyframe), is
retried with backoff while the session lasts, and has a bounded backlog past which media
is skipped up to the next keyframe (counted). A slow target never slows the source or
another target. What happens is reported per target (:class:`TargetStats`,
:class:`TargetEvent`) to a :class:`MultistreamObserver`. Target keys never reach a log.
"""

from ingest.multistream.fanout import Multistream
from ingest.multistream.model import (
    FAILED_AFTER,
    EventKind,
    ForwardSettings,
    MultistreamObserver,
    Target,
    TargetEvent,
    TargetStats,
    TargetStatus,
)

__all__ = [
    "FAILED_AFTER",
    "EventKind",
    "ForwardSettings",
    "Multistream",
    "MultistreamObserver",
    "Target",
    "TargetEvent",
    "TargetStats",
    "TargetStatus",
]
