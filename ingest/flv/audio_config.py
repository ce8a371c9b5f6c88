"""Audio codec configuration: AAC AudioSpecificConfig, OpusHead, FLAC STREAMINFO, and
the frame headers of codecs that send no configuration (AC-3, E-AC-3, MP3).

Every function returns ``(sample_rate, channels, profile)`` with ``None`` for whatever
could not be read, and never raises.
"""

from __future__ import annotations

from .bitreader import BitReader, BitstreamError

__all__ = [
    "AudioFacts",
    "aac_config_facts",
    "ac3_frame_facts",
    "flac_config_facts",
    "mp3_frame_facts",
    "opus_config_facts",
]

AudioFacts = tuple[int | None, int | None, str | None]

_AAC_RATES = (
    *(96000, 88200, 64000, 48000, 44100, 32000, 24000),
    *(22050, 16000, 12000, 11025, 8000, 7350),
)
#: channelConfiguration -> channel count (0: defined by a program config element).
_AAC_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}
_AAC_PROFILES = {
    1: "Main",
    2: "LC",
    3: "SSR",
    4: "LTP",
    5: "HE-AAC",
    23: "LD",
    29: "HE-AACv2",
    39: "ELD",
    42: "xHE-AAC",
}
_AOT_SBR = 5
_AOT_PS = 29


def _aac_rate(r: BitReader) -> int | None:
    index = r.u(4)
    if index == 0x0F:
        return r.u(24) or None
    return _AAC_RATES[index] if index < len(_AAC_RATES) else None


def aac_config_facts(data: bytes) -> AudioFacts:
    """Sample rate, channels and profile from an AudioSpecificConfig (ISO 14496-3
    1.6.2.1). For explicitly signalled HE-AAC (object type 5 or 29) the rate is the SBR
    output rate, and parametric stereo (29) decodes a mono core to two channels."""
    rate: int | None = None
    channels: int | None = None
    profile: str | None = None
    r = BitReader(data)
    try:
        object_type = r.u(5)
        if object_type == 31:
            object_type = 32 + r.u(6)
        profile = _AAC_PROFILES.get(object_type, f"AOT {object_type}")
        rate = _aac_rate(r)
        channels = _AAC_CHANNELS.get(r.u(4))
        if object_type == _AOT_PS and channels == 1:
            channels = 2
        if object_type in (_AOT_SBR, _AOT_PS):
            rate = _aac_rate(r)
    except BitstreamError:
        pass
    return rate, channels, profile


def opus_config_facts(data: bytes) -> AudioFacts:
    """Channels from an OpusHead identification header (RFC 7845 5.1).

    The rate is always 48000: Opus decodes at 48 kHz, and the header's "input sample
    rate" only records what the encoder was fed (RFC 7845 says not to play back at it).
    """
    if len(data) < 19 or data[:8] != b"OpusHead" or data[9] == 0:
        return 48000, None, None
    return 48000, data[9], None


def flac_config_facts(data: bytes) -> AudioFacts:
    """Sample rate and channels from FLAC STREAMINFO, accepted as the bare 34-byte block
    (what FFmpeg sends), with its 4-byte metadata block header, or after the ``fLaC``
    stream marker."""
    info: bytes | None = None
    if data[:4] == b"fLaC":
        pos = 4
        while pos + 4 <= len(data):
            block_type = data[pos] & 0x7F
            size = int.from_bytes(data[pos + 1 : pos + 4], "big")
            if block_type == 0:
                info = data[pos + 4 : pos + 4 + size]
                break
            if data[pos] & 0x80:
                break
            pos += 4 + size
    elif len(data) >= 4 and data[0] & 0x7F == 0 and data[1:4] == b"\x00\x00\x22":
        info = data[4:]
    else:
        info = data
    if info is None or len(info) < 14:
        return None, None, None
    rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4)
    channels = ((info[12] >> 1) & 0x07) + 1
    return rate or None, channels, None


_AC3_RATES = (48000, 44100, 32000)
_EAC3_HALF_RATES = (24000, 22050, 16000)
#: acmod -> full-bandwidth channels (1+1 dual mono counts as two).
_AC3_CHANNELS = (2, 1, 2, 3, 3, 4, 4, 5)


def ac3_frame_facts(data: bytes) -> AudioFacts:
    """Sample rate and channels from an AC-3 or E-AC-3 syncframe header (ATSC A/52
    5.3 and E.1.2). e-RTMP sends no configuration for these codecs, so callers pass
    the first coded frame."""
    if len(data) < 8 or data[0] != 0x0B or data[1] != 0x77:
        return None, None, None
    bsid = data[5] >> 3
    r = BitReader(data[2:8])
    try:
        if bsid <= 10:  # AC-3
            r.skip(16)  # crc1
            fscod = r.u(2)
            r.skip(6 + 5 + 3)  # frmsizecod, bsid, bsmod
            acmod = r.u(3)
            if acmod & 1 and acmod != 1:
                r.skip(2)  # cmixlev
            if acmod & 4:
                r.skip(2)  # surmixlev
            if acmod == 2:
                r.skip(2)  # dsurmod
            rate = _AC3_RATES[fscod] if fscod < 3 else None
            profile = "AC-3"
        else:  # E-AC-3
            r.skip(2 + 3 + 11)  # strmtyp, substreamid, frmsiz
            fscod = r.u(2)
            fscod2 = r.u(2)
            if fscod == 3:
                rate = _EAC3_HALF_RATES[fscod2] if fscod2 < 3 else None
            else:
                rate = _AC3_RATES[fscod]
            acmod = r.u(3)
            profile = "E-AC-3"
        lfe = r.u(1)
    except BitstreamError:
        return None, None, None
    return rate, _AC3_CHANNELS[acmod] + lfe, profile


_MP3_RATES = (44100, 48000, 32000)


def mp3_frame_facts(data: bytes) -> AudioFacts:
    """Sample rate and channels from an MPEG audio frame header."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return None, None, None
    version = (data[1] >> 3) & 0x03  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    index = (data[2] >> 2) & 0x03
    if version == 1 or index == 3:
        return None, None, None
    rate = _MP3_RATES[index] >> {3: 0, 2: 1, 0: 2}[version]
    channels = 1 if data[3] >> 6 == 3 else 2
    return rate, channels, None
