"""The values the FLV payload parsers return, and the package's one error.

An RTMP audio (type 8) or video (type 9) message body is an FLV tag body. The parsers turn
one such body into a list of packets: usually one, several when an Enhanced RTMP
*Multitrack* message batches tracks together, none for an empty message.

Every packet keeps the message timestamp it came with as ``dts`` (32-bit milliseconds, as
received; extending it past 2**32 is :class:`~ingest.flv.timestamps.TimestampUnwrapper`'s
job) and the codec payload that follows the FLV/e-RTMP headers as ``data``, never decoded.

Packets are named tuples: immutable like the events, and made once or more per media
message at about a third of a frozen dataclass's cost.
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class FlvError(ValueError):
    """A tag header is truncated or malformed (a length that overruns the payload, a
    multitrack or ModEx block that does not fit, an AVC packet shorter than its header).

    Callers drop the one message that raised it; it is not a reason to end a connection.
    """


#: What a video packet carries. ``config`` is a sequence header / SequenceStart (decoder
#: configuration record), ``frame`` coded frame data, ``end`` an end of sequence,
#: ``metadata`` e-RTMP AMF-encoded metadata (``colorInfo``), ``command`` a video
#: info/command frame (frame type 5, no media), ``unsupported`` a codec or packet type
#: this package identifies at best but does not understand.
VideoKind = Literal["config", "frame", "end", "metadata", "command", "unsupported"]

#: What an audio packet carries. ``multichannel`` is the e-RTMP MultichannelConfig.
AudioKind = Literal["config", "frame", "end", "multichannel", "unsupported"]


class VideoPacket(NamedTuple):
    """One video track's share of one video message.

    ``codec`` is ``"h264"``, ``"hevc"``, ``"av1"``, ``"vp9"``, ``"vp8"``, ``"vvc"``, a
    legacy FLV codec name (``"h263"``, ``"vp6"``...) or ``None`` for an unknown codec.
    ``fourcc`` is the e-RTMP FourCC as sent (``None`` for legacy tags and commands).
    ``frame_type`` is the FLV frame type (1 key, 2 inter, 3 disposable, 4 generated key,
    5 command). ``is_keyframe`` is true only for coded frame data (``kind == "frame"``)
    of a key or generated-key frame; sequence headers are not keyframes.
    ``cts`` is the signed composition time offset in milliseconds (0 where the format
    carries none). ``timestamp_offset_ns`` is the e-RTMP v2 ModEx TimestampOffsetNano,
    nanoseconds to add to ``dts`` for sub-millisecond precision (0 when absent).
    """

    codec: str | None
    kind: VideoKind
    dts: int
    cts: int
    data: bytes
    frame_type: int
    is_keyframe: bool
    fourcc: str | None = None
    track_id: int = 0
    timestamp_offset_ns: int = 0

    @property
    def pts(self) -> int:
        """Presentation timestamp in milliseconds: ``dts + cts``."""
        return self.dts + self.cts

    def __repr__(self) -> str:  # keeps multi-kilobyte frames out of logs
        return (
            f"VideoPacket(codec={self.codec!r}, kind={self.kind!r}, dts={self.dts}, "
            f"cts={self.cts}, data=<{len(self.data)} bytes>, frame_type={self.frame_type}, "
            f"is_keyframe={self.is_keyframe}, fourcc={self.fourcc!r}, "
            f"track_id={self.track_id}, timestamp_offset_ns={self.timestamp_offset_ns})"
        )


class AudioPacket(NamedTuple):
    """One audio track's share of one audio message.

    ``codec`` is ``"aac"``, ``"mp3"``, ``"opus"``, ``"flac"``, ``"ac3"``, ``"eac3"``,
    ``"speex"``, ``"pcm_alaw"``, ``"pcm_mulaw"``, ``"pcm"``, ``"adpcm"``,
    ``"nellymoser"`` or ``None`` for an unknown codec. ``sample_rate`` and ``channels``
    are what a legacy tag header declares (``None`` for e-RTMP tags, except that a
    MultichannelConfig sets ``channels``). The legacy AAC header always claims
    44100 Hz stereo: the AudioSpecificConfig is authoritative, see
    :func:`~ingest.flv.track.parse_audio_config`.
    """

    codec: str | None
    kind: AudioKind
    dts: int
    data: bytes
    sample_rate: int | None = None
    channels: int | None = None
    fourcc: str | None = None
    track_id: int = 0
    timestamp_offset_ns: int = 0

    def __repr__(self) -> str:
        return (
            f"AudioPacket(codec={self.codec!r}, kind={self.kind!r}, dts={self.dts}, "
            f"data=<{len(self.data)} bytes>, sample_rate={self.sample_rate}, "
            f"channels={self.channels}, fourcc={self.fourcc!r}, track_id={self.track_id}, "
            f"timestamp_offset_ns={self.timestamp_offset_ns})"
        )
