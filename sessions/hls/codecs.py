"""RFC 6381 codec strings (``CODECS`` in a master playlist) from codec configurations.

Video from the decoder configuration record the publisher sent (avcC, hvcC, av1C, vpcC)
or, for H.264, from an Annex B SPS (what an encoder gives as extradata). Audio from the
AAC AudioSpecificConfig; the other audio codecs have fixed names. ``None`` when the
record cannot be read (a player then decides by itself).

References: RFC 6381 3.3; ISO/IEC 14496-15 annex E (avc1, hvc1); the AV1 codec ISO media
file format binding (av01); the VP codec ISO media file format binding (vp09).
"""

from __future__ import annotations

__all__ = ["audio_codec_string", "codecs_attribute", "video_codec_string"]

_FIXED_AUDIO = {
    "mp3": "mp4a.40.34",
    "opus": "opus",
    "flac": "fLaC",
    "ac3": "ac-3",
    "eac3": "ec-3",
}


def _avc(record: bytes) -> str | None:
    if len(record) >= 4 and record[0] == 1:  # AVCDecoderConfigurationRecord
        return f"avc1.{record[1]:02x}{record[2]:02x}{record[3]:02x}"
    # Annex B: the first SPS (NAL type 7) after a start code.
    start = record.find(b"\x00\x00\x01")
    while start != -1:
        nal = start + 3
        if nal + 4 <= len(record) and record[nal] & 0x1F == 7:
            return f"avc1.{record[nal + 1]:02x}{record[nal + 2]:02x}{record[nal + 3]:02x}"
        start = record.find(b"\x00\x00\x01", nal)
    return None


def _hevc(record: bytes) -> str | None:
    if len(record) < 13 or record[0] != 1:
        return None
    space = ("", "A", "B", "C")[record[1] >> 6]
    tier = "H" if record[1] & 0x20 else "L"
    profile = record[1] & 0x1F
    compat = int.from_bytes(record[2:6], "big")
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    constraints = bytearray(record[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    text = f"hvc1.{space}{profile}.{reversed_compat:X}.{tier}{record[12]}"
    return text + "".join(f".{byte:02X}" for byte in constraints)


def _av1(record: bytes) -> str | None:
    if len(record) < 4 or record[0] != 0x81:
        return None
    profile = record[1] >> 5
    level = record[1] & 0x1F
    tier = "H" if record[2] & 0x80 else "M"
    high, twelve = bool(record[2] & 0x40), bool(record[2] & 0x20)
    depth = 12 if high and twelve else 10 if high else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def _vp9(record: bytes) -> str | None:
    # vpcC is a FullBox body: version and flags (4 bytes), then profile, level, bit depth.
    if len(record) < 7:
        return None
    return f"vp09.{record[4]:02d}.{record[5]:02d}.{record[6] >> 4:02d}"


def video_codec_string(codec: str, record: bytes) -> str | None:
    """``avc1.PPCCLL`` and its kin for a video track's configuration record."""
    parse = {"h264": _avc, "hevc": _hevc, "av1": _av1, "vp9": _vp9}.get(codec)
    return parse(record) if parse is not None else None


def audio_codec_string(codec: str, record: bytes = b"") -> str | None:
    """``mp4a.40.2`` (AAC-LC, or the object type its AudioSpecificConfig names), ``opus``,
    ``fLaC``, ``ac-3``, ``ec-3``, ``mp4a.40.34`` (MP3)."""
    if codec != "aac":
        return _FIXED_AUDIO.get(codec)
    if not record:
        return None
    object_type = record[0] >> 3
    if object_type == 31 and len(record) >= 2:
        object_type = 32 + (((record[0] & 0x07) << 3) | (record[1] >> 5))
    return f"mp4a.40.{object_type}"


def codecs_attribute(*codecs: str | None) -> str | None:
    """The ``CODECS`` value for these (unknown ones left out; None if none is known)."""
    known = [codec for codec in codecs if codec]
    return ",".join(known) if known else None
