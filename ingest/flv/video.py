"""Video tag bodies (RTMP message type 9): legacy FLV and Enhanced RTMP.

Legacy (byte 0 bit 7 clear)::

    UB[4] frame type | UB[4] codec id
    AVC (7) / HEVC (12, a widespread non-standard extension):
        UI8  AVCPacketType (0 sequence header, 1 NALUs, 2 end of sequence)
        SI24 composition time offset (ms)
        data (decoder configuration record, or length-prefixed NAL units)
    frame type 5 (command frame): UI8 command, no media

Enhanced (bit 7 set)::

    UB[1] 1 | UB[3] frame type | UB[4] VideoPacketType
    [ModEx blocks] [command byte | Multitrack header | FourCC] then the body:
    SequenceStart / MPEG2TSSequenceStart: configuration record
    CodedFrames: SI24 composition time offset (avc1, hvc1, vvc1 only), then frame data
    CodedFramesX: frame data, composition time offset 0
    SequenceEnd: nothing; Metadata: AMF-encoded values (exposed raw)

The common cases (legacy AVC NALUs, enhanced CodedFrames) allocate only the returned
list, the packet and the data slice.
"""

from __future__ import annotations

from .enhanced import fourcc_text, read_fourcc, read_modex_chain, read_multitrack
from .packets import FlvError, VideoKind, VideoPacket

__all__ = ["VIDEO_FOURCC_CODECS", "parse_video"]

_FRAME_KEY = 1
_FRAME_GENERATED_KEY = 4
_FRAME_COMMAND = 5

_CODEC_AVC = 7
_CODEC_HEVC = 12

#: Legacy FLV codec ids. Only AVC and HEVC payloads are understood; the others are
#: named so callers can report them, and come back as ``kind="unsupported"``.
_LEGACY_CODECS: dict[int, str] = {
    1: "jpeg",
    2: "h263",
    3: "flashsv",
    4: "vp6",
    5: "vp6a",
    6: "flashsv2",
    _CODEC_AVC: "h264",
    _CODEC_HEVC: "hevc",
}

_SEQUENCE_START = 0
_CODED_FRAMES = 1
_SEQUENCE_END = 2
_CODED_FRAMES_X = 3
_METADATA = 4
_MPEG2TS_SEQUENCE_START = 5
_MULTITRACK = 6
_MODEX = 7

#: e-RTMP video FourCCs and the codec names this package uses for them.
VIDEO_FOURCC_CODECS: dict[bytes, str] = {
    b"avc1": "h264",
    b"hvc1": "hevc",
    b"av01": "av1",
    b"vp09": "vp9",
    b"vp08": "vp8",
    b"vvc1": "vvc",
}

#: FourCCs whose CodedFrames carry an SI24 composition time offset.
_CTS_FOURCCS = frozenset((b"avc1", b"hvc1", b"vvc1"))

_PACKET_KINDS: dict[int, VideoKind] = {
    _SEQUENCE_START: "config",
    _CODED_FRAMES: "frame",
    _SEQUENCE_END: "end",
    _CODED_FRAMES_X: "frame",
    _METADATA: "metadata",
    _MPEG2TS_SEQUENCE_START: "config",
}

_LEGACY_KINDS: dict[int, VideoKind] = {0: "config", 1: "frame", 2: "end"}


def parse_video(payload: bytes, timestamp: int) -> list[VideoPacket]:
    """Parse one video message body received with ``timestamp`` (ms, the DTS).

    Returns one packet per track (one for everything but e-RTMP Multitrack), or an empty
    list for an empty payload. Unknown codecs and FourCCs come back as
    ``kind="unsupported"`` packets. Raises :class:`FlvError` only for a truncated or
    inconsistent header.
    """
    if not payload:
        return []
    b0 = payload[0]
    if b0 & 0x80:
        return _parse_enhanced(payload, timestamp, b0)
    frame_type = b0 >> 4
    codec_id = b0 & 0x0F
    if codec_id in (_CODEC_AVC, _CODEC_HEVC):
        codec = "h264" if codec_id == _CODEC_AVC else "hevc"
        if frame_type == _FRAME_COMMAND:
            return [VideoPacket(codec, "command", timestamp, 0, payload[1:], frame_type, False)]
        if len(payload) < 5:
            raise FlvError(f"{codec} video tag of {len(payload)} bytes is shorter than 5")
        packet_type = payload[1]
        cts = int.from_bytes(payload[2:5], "big", signed=True)
        if packet_type == 1:
            return [
                VideoPacket(
                    codec,
                    "frame",
                    timestamp,
                    cts,
                    payload[5:],
                    frame_type,
                    frame_type in (_FRAME_KEY, _FRAME_GENERATED_KEY),
                )
            ]
        kind = _LEGACY_KINDS.get(packet_type, "unsupported")
        return [VideoPacket(codec, kind, timestamp, cts, payload[5:], frame_type, False)]
    name = _LEGACY_CODECS.get(codec_id)
    kind = "command" if frame_type == _FRAME_COMMAND else "unsupported"
    return [VideoPacket(name, kind, timestamp, 0, payload[1:], frame_type, False)]


def _parse_enhanced(payload: bytes, timestamp: int, b0: int) -> list[VideoPacket]:
    frame_type = (b0 >> 4) & 0x07
    packet_type = b0 & 0x0F
    pos = 1
    nano = 0
    if packet_type == _MODEX:
        pos, packet_type, nano = read_modex_chain(payload, pos, packet_type, _MODEX)

    if frame_type == _FRAME_COMMAND and packet_type != _METADATA:
        # A command frame: one UI8 command (seek start/end), no FourCC and no media.
        return [
            VideoPacket(
                None, "command", timestamp, 0, payload[pos:], frame_type, False, None, 0, nano
            )
        ]

    if packet_type != _MULTITRACK:
        fourcc = read_fourcc(payload, pos)
        return [
            _track_packet(
                payload, pos + 4, len(payload), fourcc, packet_type, frame_type, 0, timestamp, nano
            )
        ]

    found = read_multitrack(payload, pos, "video", (_MULTITRACK, _MODEX))
    if found is None:
        # A multitrack layout defined after this code was written: nothing can be located.
        return [
            VideoPacket(
                None, "unsupported", timestamp, 0, payload[pos:], frame_type, False, None, 0, nano
            )
        ]
    packet_type, tracks = found
    return [
        _track_packet(
            payload, start, end, fourcc, packet_type, frame_type, track_id, timestamp, nano
        )
        for fourcc, track_id, start, end in tracks
    ]


def _track_packet(
    payload: bytes,
    start: int,
    end: int,
    fourcc: bytes,
    packet_type: int,
    frame_type: int,
    track_id: int,
    timestamp: int,
    nano: int,
) -> VideoPacket:
    """The packet for one track whose body is ``payload[start:end]``."""
    codec = VIDEO_FOURCC_CODECS.get(fourcc)
    fourcc_str = fourcc_text(fourcc)
    kind = _PACKET_KINDS.get(packet_type, "unsupported") if codec is not None else "unsupported"
    cts = 0
    if kind == "frame":
        if packet_type == _CODED_FRAMES and fourcc in _CTS_FOURCCS:
            if end - start < 3:
                raise FlvError(
                    f"{fourcc_str} CodedFrames body of {end - start} bytes has no "
                    "composition time offset"
                )
            cts = int.from_bytes(payload[start : start + 3], "big", signed=True)
            start += 3
        is_keyframe = frame_type in (_FRAME_KEY, _FRAME_GENERATED_KEY)
    else:
        is_keyframe = False
    return VideoPacket(
        codec,
        kind,
        timestamp,
        cts,
        payload[start:end],
        frame_type,
        is_keyframe,
        fourcc_str,
        track_id,
        nano,
    )
