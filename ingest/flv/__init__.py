"""FLV payloads carried by RTMP: audio/video tag bodies, codec configuration, timestamps.

Sans-IO and decode-free: nothing here touches sockets, asyncio or a media library.

* :func:`parse_video` / :func:`parse_audio` turn one RTMP media message body into
  :class:`VideoPacket` / :class:`AudioPacket` values (legacy FLV and Enhanced RTMP v1/v2,
  Multitrack and ModEx included). A malformed header raises :class:`FlvError`: drop that
  message and carry on.
* :func:`parse_video_config` / :func:`parse_audio_config` read picture size, sample
  rate, channels and profile from sequence headers into a :class:`TrackInfo`.
* :class:`TimestampUnwrapper` extends 32-bit millisecond timestamps across wraps.
"""

from .audio import parse_audio
from .packets import AudioKind, AudioPacket, FlvError, VideoKind, VideoPacket
from .timestamps import TimestampUnwrapper
from .track import TrackInfo, parse_audio_config, parse_video_config
from .video import KEYFRAME_FIRST_BYTES, is_keyframe, parse_video

__all__ = [
    "KEYFRAME_FIRST_BYTES",
    "AudioKind",
    "AudioPacket",
    "FlvError",
    "TimestampUnwrapper",
    "TrackInfo",
    "VideoKind",
    "VideoPacket",
    "is_keyframe",
    "parse_audio",
    "parse_audio_config",
    "parse_video",
    "parse_video_config",
]
