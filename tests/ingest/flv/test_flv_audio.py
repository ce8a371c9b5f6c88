"""parse_audio on hand-built tag bodies: legacy formats and Enhanced RTMP (case 37)."""

from __future__ import annotations

import pytest

from ingest.flv import AudioPacket, FlvError, parse_audio, parse_audio_config

OPUS_HEAD = b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
STREAMINFO = bytes.fromhex("12001200000000004a580bb802f0") + bytes(20)
AC3_FRAME = bytes.fromhex("0b77505214404300")
EAC3_FRAME = bytes.fromhex("0b77017f34870000")


def u24(value: int) -> bytes:
    return value.to_bytes(3, "big")


def one(payload: bytes, timestamp: int = 1000) -> AudioPacket:
    packets = parse_audio(payload, timestamp)
    assert len(packets) == 1
    return packets[0]


# --- legacy ---------------------------------------------------------------------------


def test_aac_sequence_header() -> None:
    p = one(b"\xaf\x00\x11\x90", 0)
    assert (p.codec, p.kind, p.data, p.dts) == ("aac", "config", b"\x11\x90", 0)
    # The legacy header says 44100 Hz stereo; the AudioSpecificConfig is authoritative.
    assert (p.sample_rate, p.channels) == (44100, 2)
    info = parse_audio_config(p.codec, p.data, p.sample_rate, p.channels)
    assert (info.sample_rate, info.channels, info.profile) == (48000, 2, "LC")


def test_aac_raw_frame() -> None:
    p = one(b"\xaf\x01\x21\x10\x04\x60", 23)
    assert (p.codec, p.kind, p.data, p.dts, p.track_id, p.fourcc) == (
        "aac",
        "frame",
        b"\x21\x10\x04\x60",
        23,
        0,
        None,
    )


def test_aac_mono_header_bits() -> None:
    p = one(b"\xae\x01\x00")
    assert (p.sample_rate, p.channels) == (44100, 1)


def test_aac_unknown_packet_type() -> None:
    assert one(b"\xaf\x07").kind == "unsupported"


def test_aac_without_packet_type_raises() -> None:
    with pytest.raises(FlvError, match="AACPacketType"):
        parse_audio(b"\xaf", 0)


def test_zero_length_audio_is_no_packets_case_36() -> None:
    assert parse_audio(b"", 1234) == []


def test_mp3_legacy() -> None:
    frame = b"\xff\xfb\x90\x64" + bytes(10)
    p = one(b"\x2f" + frame)
    assert (p.codec, p.kind, p.data, p.sample_rate, p.channels) == ("mp3", "frame", frame, 44100, 2)
    info = parse_audio_config("mp3", frame)
    assert (info.sample_rate, info.channels) == (44100, 2)


@pytest.mark.parametrize(
    ("byte0", "codec", "rate", "channels"),
    [
        (0x2A, "mp3", 22050, 1),
        (0xE2, "mp3", 8000, 1),  # MP3 8 kHz
        (0xB2, "speex", 16000, 1),
        (0x72, "pcm_alaw", 8000, 1),
        (0x83, "pcm_mulaw", 8000, 2),
        (0x0E, "pcm", 44100, 1),
        (0x3F, "pcm", 44100, 2),
        (0x1D, "adpcm", 44100, 2),
        (0x42, "nellymoser", 16000, 1),
        (0x52, "nellymoser", 8000, 1),
        (0x66, "nellymoser", 11025, 1),
        (0x03, "pcm", 5512, 2),
    ],
)
def test_legacy_formats(byte0: int, codec: str, rate: int, channels: int) -> None:
    p = one(bytes([byte0]) + b"\x01\x02")
    assert (p.codec, p.kind, p.sample_rate, p.channels, p.data) == (
        codec,
        "frame",
        rate,
        channels,
        b"\x01\x02",
    )


@pytest.mark.parametrize("byte0", [0xC2, 0xD2, 0xF2])
def test_legacy_reserved_and_device_formats_unsupported(byte0: int) -> None:
    p = one(bytes([byte0]) + b"\x00")
    assert (p.codec, p.kind) == (None, "unsupported")


def test_legacy_one_byte_frame_is_empty_frame() -> None:
    p = one(b"\x2f")
    assert (p.kind, p.data) == ("frame", b"")


# --- enhanced -----------------------------------------------------------------------


def test_enhanced_opus_sequence_start_and_frames() -> None:
    config = one(b"\x90Opus" + OPUS_HEAD)
    assert (config.codec, config.fourcc, config.kind, config.data) == (
        "opus",
        "Opus",
        "config",
        OPUS_HEAD,
    )
    assert (config.sample_rate, config.channels) == (None, None)
    info = parse_audio_config(config.codec, config.data)
    assert (info.sample_rate, info.channels) == (48000, 2)
    frame = one(b"\x91Opus\xfc\xff\xfe", 20)
    assert (frame.kind, frame.data, frame.dts) == ("frame", b"\xfc\xff\xfe", 20)


def test_enhanced_flac_sequence_start() -> None:
    p = one(b"\x90fLaC" + STREAMINFO)
    assert (p.codec, p.kind, p.data) == ("flac", "config", STREAMINFO)
    info = parse_audio_config(p.codec, p.data)
    assert (info.sample_rate, info.channels) == (48000, 2)


@pytest.mark.parametrize(
    ("fourcc", "codec", "frame", "profile"),
    [(b"ac-3", "ac3", AC3_FRAME, "AC-3"), (b"ec-3", "eac3", EAC3_FRAME, "E-AC-3")],
)
def test_enhanced_ac3_and_eac3(fourcc: bytes, codec: str, frame: bytes, profile: str) -> None:
    config = one(b"\x90" + fourcc)
    assert (config.codec, config.kind, config.data) == (codec, "config", b"")
    p = one(b"\x91" + fourcc + frame)
    assert (p.codec, p.kind, p.data) == (codec, "frame", frame)
    info = parse_audio_config(p.codec, p.data)
    assert (info.sample_rate, info.channels, info.profile) == (48000, 2, profile)


def test_enhanced_mp3_and_mp4a() -> None:
    assert one(b"\x91.mp3\xff\xfb").codec == "mp3"
    p = one(b"\x90mp4a\x12\x10")
    assert (p.codec, p.kind, p.data) == ("aac", "config", b"\x12\x10")


def test_enhanced_sequence_end() -> None:
    p = one(b"\x92Opus")
    assert (p.kind, p.data) == ("end", b"")


def test_multichannel_config_sets_channels() -> None:
    p = one(b"\x94Opus\x01\x06\x00\x00\x00\x3f")
    assert (p.kind, p.channels, p.data) == ("multichannel", 6, b"\x01\x06\x00\x00\x00\x3f")


def test_multichannel_config_truncated_raises() -> None:
    with pytest.raises(FlvError, match="MultichannelConfig"):
        parse_audio(b"\x94Opus\x01", 0)


def test_unknown_audio_fourcc_is_ignored_cleanly() -> None:
    p = one(b"\x91abcd\x01\x02")
    assert (p.codec, p.fourcc, p.kind, p.data) == (None, "abcd", "unsupported", b"\x01\x02")


def test_reserved_audio_packet_type() -> None:
    p = one(b"\x93Opus\x00")
    assert (p.codec, p.kind) == ("opus", "unsupported")


@pytest.mark.parametrize("payload", [b"\x91", b"\x91Op", b"\x95", b"\x95\x11Opus\x00"])
def test_enhanced_truncated_header_raises(payload: bytes) -> None:
    with pytest.raises(FlvError):
        parse_audio(payload, 0)


def test_audio_multitrack_one_track() -> None:
    p = one(b"\x95\x01Opus\x01\xfc\xff", 40)
    assert (p.track_id, p.codec, p.kind, p.data, p.dts) == (1, "opus", "frame", b"\xfc\xff", 40)


def test_audio_multitrack_many_tracks_many_codecs() -> None:
    payload = (
        b"\x95\x21"
        + b"mp4a\x00"
        + u24(3)
        + b"\x21\x10\x04"
        + b"Opus\x01"
        + u24(2)
        + b"\xfc\xff"
        + b"zzzz\x02"
        + u24(0)
    )
    packets = parse_audio(payload, 7)
    assert [(p.track_id, p.codec, p.fourcc, p.kind, p.data) for p in packets] == [
        (0, "aac", "mp4a", "frame", b"\x21\x10\x04"),
        (1, "opus", "Opus", "frame", b"\xfc\xff"),
        (2, None, "zzzz", "unsupported", b""),
    ]


def test_audio_multitrack_many_tracks_overrun_raises() -> None:
    with pytest.raises(FlvError, match="overrun"):
        parse_audio(b"\x95\x11Opus\x00" + u24(9) + b"\x00", 0)


def test_audio_modex_timestamp_offset_nano() -> None:
    p = one(b"\x97\x02" + u24(999_999) + b"\x01Opus\xfc")
    assert (p.kind, p.codec, p.timestamp_offset_ns, p.data) == ("frame", "opus", 999_999, b"\xfc")


def test_audio_modex_overrun_raises() -> None:
    with pytest.raises(FlvError, match="ModEx"):
        parse_audio(b"\x97\x10\x00\x00", 0)
