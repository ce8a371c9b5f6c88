"""Audio tag bodies (RTMP message type 8): legacy FLV and Enhanced RTMP.

Legacy (SoundFormat != 9)::

    UB[4] SoundFormat | UB[2] rate | UB[1] size | UB[1] type (0 mono, 1 stereo)
    AAC (10): UI8 AACPacketType (0 AudioSpecificConfig, 1 raw frame), then data
    others: the coded data directly

Enhanced (SoundFormat 9 = ExHeader)::

    UB[4] 9 | UB[4] AudioPacketType
    [ModEx blocks] [Multitrack header | FourCC] then the body:
    SequenceStart: codec configuration (AudioSpecificConfig, OpusHead, FLAC STREAMINFO)
    CodedFrames: frame data; SequenceEnd: nothing
    MultichannelConfig: UI8 channel order, UI8 channel count, then a mapping or flags

Zero-length audio messages are legal (some encoders send them as keep-alives): they
parse to an empty list.
"""

from __future__ import annotations

from .enhanced import fourcc_text, read_fourcc, read_modex_chain, read_multitrack
from .packets import AudioKind, AudioPacket, FlvError

__all__ = ["AUDIO_FOURCC_CODECS", "parse_audio"]

_FORMAT_AAC = 10
_FORMAT_EX_HEADER = 9

#: Legacy SoundFormat values and their codec names (12, 13 reserved, 15 device-specific).
_LEGACY_CODECS: dict[int, str] = {
    0: "pcm",  # platform-endian linear PCM
    1: "adpcm",
    2: "mp3",
    3: "pcm",  # little-endian linear PCM
    4: "nellymoser",  # 16 kHz mono
    5: "nellymoser",  # 8 kHz mono
    6: "nellymoser",
    7: "pcm_alaw",
    8: "pcm_mulaw",
    10: "aac",
    11: "speex",
    14: "mp3",  # 8 kHz
}

_HEADER_RATES = (5512, 11025, 22050, 44100)

#: SoundFormats whose sample rate is fixed whatever the header's rate bits say.
_FIXED_RATES: dict[int, int] = {4: 16000, 5: 8000, 7: 8000, 8: 8000, 11: 16000, 14: 8000}
#: SoundFormats that are mono whatever the header's type bit says.
_MONO_FORMATS = frozenset((4, 5, 11))

_SEQUENCE_START = 0
_CODED_FRAMES = 1
_SEQUENCE_END = 2
_MULTICHANNEL_CONFIG = 4
_MULTITRACK = 5
_MODEX = 7

#: e-RTMP audio FourCCs and the codec names this package uses for them.
AUDIO_FOURCC_CODECS: dict[bytes, str] = {
    b"Opus": "opus",
    b"fLaC": "flac",
    b"ac-3": "ac3",
    b"ec-3": "eac3",
    b".mp3": "mp3",
    b"mp4a": "aac",
}

_PACKET_KINDS: dict[int, AudioKind] = {
    _SEQUENCE_START: "config",
    _CODED_FRAMES: "frame",
    _SEQUENCE_END: "end",
    _MULTICHANNEL_CONFIG: "multichannel",
}


def parse_audio(payload: bytes, timestamp: int) -> list[AudioPacket]:
    """Parse one audio message body received with ``timestamp`` (ms).

    Returns one packet per track (one for everything but e-RTMP Multitrack), or an empty
    list for an empty payload. Unknown codecs and FourCCs come back as
    ``kind="unsupported"`` packets. Raises :class:`FlvError` only for a truncated or
    inconsistent header.
    """
    if not payload:
        return []
    b0 = payload[0]
    sound_format = b0 >> 4
    if sound_format == _FORMAT_AAC:
        if len(payload) < 2:
            raise FlvError("AAC audio tag has no AACPacketType")
        packet_type = payload[1]
        kind: AudioKind
        if packet_type == 1:
            kind = "frame"
        elif packet_type == 0:
            kind = "config"
        else:
            kind = "unsupported"
        rate = _HEADER_RATES[(b0 >> 2) & 0x03]
        return [AudioPacket("aac", kind, timestamp, payload[2:], rate, (b0 & 0x01) + 1)]
    if sound_format == _FORMAT_EX_HEADER:
        return _parse_enhanced(payload, timestamp, b0)
    codec = _LEGACY_CODECS.get(sound_format)
    rate = _FIXED_RATES.get(sound_format) or _HEADER_RATES[(b0 >> 2) & 0x03]
    channels = 1 if sound_format in _MONO_FORMATS else (b0 & 0x01) + 1
    kind = "frame" if codec is not None else "unsupported"
    return [AudioPacket(codec, kind, timestamp, payload[1:], rate, channels)]


def _parse_enhanced(payload: bytes, timestamp: int, b0: int) -> list[AudioPacket]:
    packet_type = b0 & 0x0F
    pos = 1
    nano = 0
    if packet_type == _MODEX:
        pos, packet_type, nano = read_modex_chain(payload, pos, packet_type, _MODEX)

    if packet_type != _MULTITRACK:
        fourcc = read_fourcc(payload, pos)
        return [
            _track_packet(payload, pos + 4, len(payload), fourcc, packet_type, 0, timestamp, nano)
        ]

    found = read_multitrack(payload, pos, "audio", (_MULTITRACK, _MODEX))
    if found is None:
        return [
            AudioPacket(None, "unsupported", timestamp, payload[pos:], None, None, None, 0, nano)
        ]
    packet_type, tracks = found
    return [
        _track_packet(payload, start, end, fourcc, packet_type, track_id, timestamp, nano)
        for fourcc, track_id, start, end in tracks
    ]


def _track_packet(
    payload: bytes,
    start: int,
    end: int,
    fourcc: bytes,
    packet_type: int,
    track_id: int,
    timestamp: int,
    nano: int,
) -> AudioPacket:
    """The packet for one track whose body is ``payload[start:end]``."""
    codec = AUDIO_FOURCC_CODECS.get(fourcc)
    kind = _PACKET_KINDS.get(packet_type, "unsupported") if codec is not None else "unsupported"
    channels = None
    if kind == "multichannel":
        # UI8 channel order, UI8 channel count, then a mapping (custom) or UI32 flags.
        if end - start < 2:
            raise FlvError(f"MultichannelConfig body of {end - start} bytes is truncated")
        channels = payload[start + 1]
    return AudioPacket(
        codec,
        kind,
        timestamp,
        payload[start:end],
        None,
        channels,
        fourcc_text(fourcc),
        track_id,
        nano,
    )
