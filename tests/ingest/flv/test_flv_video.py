"""parse_video on hand-built tag bodies: every legacy and Enhanced RTMP form."""

from __future__ import annotations

import pytest

from ingest.flv import KEYFRAME_FIRST_BYTES, FlvError, VideoPacket, is_keyframe, parse_video

AVCC = bytes.fromhex("01640028ffe1000467640028010004" + "68ee3cb0")
HVCC = bytes(23)
NALUS = b"\x00\x00\x00\x02\x65\x88"


def u24(value: int) -> bytes:
    return value.to_bytes(3, "big")


def si24(value: int) -> bytes:
    return value.to_bytes(3, "big", signed=True)


def one(payload: bytes, timestamp: int = 1000) -> VideoPacket:
    packets = parse_video(payload, timestamp)
    assert len(packets) == 1
    return packets[0]


# --- legacy -------------------------------------------------------------------------


def test_legacy_avc_sequence_header() -> None:
    p = one(b"\x17\x00\x00\x00\x00" + AVCC, 0)
    assert (p.codec, p.kind, p.data, p.frame_type) == ("h264", "config", AVCC, 1)
    assert p.fourcc is None and p.track_id == 0 and not p.is_keyframe


def test_legacy_avc_keyframe_nalus() -> None:
    p = one(b"\x17\x01" + si24(40) + NALUS, 1000)
    assert (p.codec, p.kind, p.dts, p.cts, p.pts) == ("h264", "frame", 1000, 40, 1040)
    assert p.is_keyframe and p.frame_type == 1 and p.data == NALUS


def test_legacy_avc_inter_frame_is_not_key() -> None:
    p = one(b"\x27\x01\x00\x00\x00" + NALUS)
    assert p.kind == "frame" and not p.is_keyframe and p.frame_type == 2


def test_generated_keyframe_counts_as_key() -> None:
    assert one(b"\x47\x01\x00\x00\x00" + NALUS).is_keyframe


def test_negative_cts_case_34() -> None:
    p = one(b"\x27\x01\xff\xff\xde" + NALUS, 5000)
    assert p.cts == -34
    assert p.pts == 5000 - 34


def test_legacy_avc_end_of_sequence() -> None:
    p = one(b"\x17\x02\x00\x00\x00")
    assert (p.kind, p.data, p.codec) == ("end", b"", "h264")


def test_legacy_command_frame_has_no_media() -> None:
    p = one(b"\x57\x01")
    assert (p.kind, p.codec, p.data, p.is_keyframe) == ("command", "h264", b"\x01", False)


def test_legacy_hevc_codec_id_12() -> None:
    config = one(b"\x1c\x00\x00\x00\x00" + HVCC)
    assert (config.codec, config.kind, config.data) == ("hevc", "config", HVCC)
    frame = one(b"\x1c\x01" + si24(-80) + NALUS, 200)
    assert (frame.codec, frame.kind, frame.pts, frame.is_keyframe) == ("hevc", "frame", 120, True)


@pytest.mark.parametrize(
    ("byte0", "codec"),
    [(0x22, "h263"), (0x24, "vp6"), (0x25, "vp6a"), (0x13, "flashsv"), (0x16, "flashsv2")],
)
def test_legacy_other_codecs_identified_but_unsupported(byte0: int, codec: str) -> None:
    p = one(bytes([byte0]) + b"\x01\x02\x03")
    assert (p.codec, p.kind, p.data) == (codec, "unsupported", b"\x01\x02\x03")


def test_legacy_unknown_codec_id() -> None:
    p = one(b"\x1f\xaa")
    assert (p.codec, p.kind) == (None, "unsupported")


def test_legacy_unknown_avc_packet_type() -> None:
    p = one(b"\x17\x09\x00\x00\x00abc")
    assert (p.codec, p.kind) == ("h264", "unsupported")


@pytest.mark.parametrize("payload", [b"\x17", b"\x17\x01", b"\x17\x01\x00\x00", b"\x1c\x00"])
def test_legacy_avc_shorter_than_5_bytes_raises(payload: bytes) -> None:
    with pytest.raises(FlvError, match="shorter than 5"):
        parse_video(payload, 0)


def test_empty_payload_is_no_packets() -> None:
    assert parse_video(b"", 0) == []


# --- enhanced ------------------------------------------------------------------------


def test_enhanced_hvc1_sequence_start() -> None:
    p = one(b"\x90hvc1" + HVCC)
    assert (p.codec, p.fourcc, p.kind, p.data, p.is_keyframe) == (
        "hevc",
        "hvc1",
        "config",
        HVCC,
        False,
    )


def test_enhanced_hvc1_coded_frames_carry_cts() -> None:
    p = one(b"\x91hvc1" + si24(80) + NALUS, 40)
    assert (p.kind, p.cts, p.pts, p.data, p.is_keyframe) == ("frame", 80, 120, NALUS, True)


def test_enhanced_avc1_negative_cts() -> None:
    p = one(b"\xa1avc1" + si24(-34) + NALUS, 100)
    assert (p.codec, p.cts, p.pts, p.is_keyframe) == ("h264", -34, 66, False)


def test_enhanced_coded_frames_x_has_zero_cts() -> None:
    p = one(b"\xa3hvc1" + NALUS, 40)
    assert (p.kind, p.cts, p.data, p.frame_type) == ("frame", 0, NALUS, 2)


def test_enhanced_av01_frames_have_no_cts() -> None:
    config = one(b"\x90av01\x81\x00\x0c\x00")
    assert (config.codec, config.kind, config.data) == ("av1", "config", b"\x81\x00\x0c\x00")
    frame = one(b"\x91av01\x12\x00\x0a", 40)
    assert (frame.codec, frame.cts, frame.data, frame.is_keyframe) == (
        "av1",
        0,
        b"\x12\x00\x0a",
        True,
    )


def test_enhanced_vp09_and_vp08() -> None:
    config = one(b"\x90vp09\x01\x00\x00\x00\x00\x14\x82\x02\x02\x02\x00\x00")
    assert (config.codec, config.kind) == ("vp9", "config")
    frame = one(b"\xa1vp09\x86\x00\x40")
    assert (frame.codec, frame.kind, frame.data, frame.is_keyframe) == (
        "vp9",
        "frame",
        b"\x86\x00\x40",
        False,
    )
    assert one(b"\x91vp08\x10\x02").codec == "vp8"


def test_enhanced_vvc1_has_cts() -> None:
    p = one(b"\x91vvc1" + si24(-2) + b"\x01", 10)
    assert (p.codec, p.cts, p.data) == ("vvc", -2, b"\x01")


def test_enhanced_sequence_end() -> None:
    p = one(b"\x92hvc1")
    assert (p.kind, p.data) == ("end", b"")


def test_enhanced_metadata_ignores_command_frame_type() -> None:
    amf = b"\x02\x00\x09colorInfo\x03\x00\x00\x09"
    p = one(b"\xd4hvc1" + amf)
    assert (p.kind, p.codec, p.fourcc, p.data, p.is_keyframe) == (
        "metadata",
        "hevc",
        "hvc1",
        amf,
        False,
    )


def test_enhanced_command_frame_has_no_fourcc() -> None:
    p = one(b"\xd0\x00")
    assert (p.kind, p.codec, p.fourcc, p.data) == ("command", None, None, b"\x00")


def test_enhanced_mpeg2ts_sequence_start_is_config() -> None:
    descriptor = b"\x80\x04\x81\x00\x0c\x00"
    p = one(b"\x95av01" + descriptor)
    assert (p.kind, p.data) == ("config", descriptor)


def test_unknown_fourcc_is_ignored_cleanly() -> None:
    p = one(b"\x91xyz9\x00\x00\x00data")
    assert (p.codec, p.fourcc, p.kind, p.data, p.is_keyframe) == (
        None,
        "xyz9",
        "unsupported",
        b"\x00\x00\x00data",
        False,
    )


def test_unknown_enhanced_packet_type_is_unsupported() -> None:
    p = one(b"\x9chvc1abc")
    assert (p.codec, p.kind) == ("hevc", "unsupported")


@pytest.mark.parametrize("payload", [b"\x91", b"\x91hvc", b"\x91hvc1", b"\x91hvc1\x00\x00"])
def test_enhanced_truncated_header_raises(payload: bytes) -> None:
    with pytest.raises(FlvError):
        parse_video(payload, 0)


# --- multitrack ---------------------------------------------------------------------


def test_multitrack_one_track() -> None:
    payload = b"\x96" + bytes([0x00 << 4 | 1]) + b"hvc1" + b"\x01" + si24(40) + NALUS
    p = one(payload, 80)
    assert (p.track_id, p.codec, p.kind, p.cts, p.pts, p.data) == (
        1,
        "hevc",
        "frame",
        40,
        120,
        NALUS,
    )
    assert p.is_keyframe


def test_multitrack_many_tracks_same_codec() -> None:
    track0 = b"\xaa" * 3
    track1 = b"\xbb" * 5
    payload = (
        b"\xa6"
        + bytes([0x1 << 4 | 3])
        + b"av01"
        + b"\x00"
        + u24(len(track0))
        + track0
        + b"\x02"
        + u24(len(track1))
        + track1
    )
    packets = parse_video(payload, 10)
    assert [(p.track_id, p.codec, p.kind, p.data, p.cts) for p in packets] == [
        (0, "av1", "frame", track0, 0),
        (2, "av1", "frame", track1, 0),
    ]
    assert not any(p.is_keyframe for p in packets)


def test_multitrack_many_tracks_many_codecs_with_unknown_fourcc() -> None:
    hevc_body = si24(-10) + NALUS
    av1_body = b"\x12\x00"
    odd_body = b"\x01\x02\x03\x04"
    payload = (
        b"\x96"
        + bytes([0x2 << 4 | 1])
        + b"hvc1\x00"
        + u24(len(hevc_body))
        + hevc_body
        + b"av01\x01"
        + u24(len(av1_body))
        + av1_body
        + b"qqqq\x02"
        + u24(len(odd_body))
        + odd_body
    )
    packets = parse_video(payload, 100)
    assert [(p.track_id, p.codec, p.fourcc, p.kind, p.pts, p.data) for p in packets] == [
        (0, "hevc", "hvc1", "frame", 90, NALUS),
        (1, "av1", "av01", "frame", 100, av1_body),
        (2, None, "qqqq", "unsupported", 100, odd_body),
    ]


def test_multitrack_sequence_start_per_track() -> None:
    payload = b"\x96\x10hvc1" + b"\x00" + u24(len(HVCC)) + HVCC + b"\x01" + u24(2) + b"\x01\x02"
    packets = parse_video(payload, 0)
    assert [(p.track_id, p.kind) for p in packets] == [(0, "config"), (1, "config")]
    assert packets[0].data == HVCC


def test_multitrack_size_overrun_raises() -> None:
    payload = b"\x96\x11hvc1\x00" + u24(100) + b"\x00\x00\x00abc"
    with pytest.raises(FlvError, match="overrun"):
        parse_video(payload, 0)


def test_multitrack_truncated_track_header_raises() -> None:
    with pytest.raises(FlvError):
        parse_video(b"\x96\x11hvc1\x00\x00", 0)
    with pytest.raises(FlvError):
        parse_video(b"\x96\x01hvc1", 0)  # OneTrack without a track id
    with pytest.raises(FlvError):
        parse_video(b"\x96", 0)


def test_multitrack_nested_multitrack_raises() -> None:
    with pytest.raises(FlvError, match="nests"):
        parse_video(b"\x96\x06hvc1\x00", 0)


def test_multitrack_reserved_type_is_unsupported() -> None:
    p = one(b"\x96\x31hvc1\x00abc")
    assert (p.kind, p.codec) == ("unsupported", None)


# --- ModEx ----------------------------------------------------------------------------


def test_modex_timestamp_offset_nano() -> None:
    nano = 500_000
    payload = b"\x97" + b"\x02" + u24(nano) + b"\x01" + b"hvc1" + si24(40) + NALUS
    p = one(payload, 1000)
    assert (p.kind, p.codec, p.cts, p.timestamp_offset_ns, p.data) == (
        "frame",
        "hevc",
        40,
        nano,
        NALUS,
    )
    assert p.is_keyframe


def test_modex_sixteen_bit_size_and_unknown_type_skipped() -> None:
    blob = bytes(range(256)) + bytes(44)  # 300 bytes: needs the UI16 size
    payload = b"\xa7" + b"\xff" + (len(blob) - 1).to_bytes(2, "big") + blob + b"\x53av01\x12"
    p = one(payload)
    assert (p.kind, p.codec, p.timestamp_offset_ns, p.data, p.frame_type) == (
        "frame",
        "av1",
        0,
        b"\x12",
        2,
    )


def test_modex_chain_then_multitrack() -> None:
    payload = (
        b"\x97"
        + b"\x00\x77\x57"  # 1 byte of unknown ModEx type 5, next packet type ModEx again
        + b"\x02"
        + u24(1234)
        + b"\x06"  # TimestampOffsetNano, next packet type Multitrack
        + b"\x03hvc1\x05abc"  # OneTrack | CodedFramesX, track 5
    )
    p = one(payload)
    assert (p.track_id, p.timestamp_offset_ns, p.data, p.kind) == (5, 1234, b"abc", "frame")


@pytest.mark.parametrize(
    "payload",
    [
        b"\x97",  # no size
        b"\x97\x05\x00",  # 6 bytes declared, 1 present
        b"\x97\xff\x01",  # UI16 size truncated
        b"\x97\x02\x00\x00\x00",  # data but no type byte
    ],
)
def test_modex_overrun_raises(payload: bytes) -> None:
    with pytest.raises(FlvError, match="ModEx"):
        parse_video(payload, 0)


def test_modex_before_command() -> None:
    p = one(b"\xd7\x02" + u24(7) + b"\x00" + b"\x01")
    assert (p.kind, p.timestamp_offset_ns, p.data) == ("command", 7, b"\x01")


def test_packet_repr_hides_payload() -> None:
    p = one(b"\x17\x01\x00\x00\x00" + bytes(5000))
    assert "5000 bytes" in repr(p) and len(repr(p)) < 300


@pytest.mark.parametrize("enhanced", [False, True], ids=["legacy", "enhanced"])
def test_one_keyframe_definition_for_every_first_byte(enhanced: bool) -> None:
    """What the parser calls a keyframe, the segmenter's hand-over does too (by the first
    byte alone, on the per-message path)."""
    for frame_type in range(8):  # (bit 7 set makes an Enhanced header)
        if enhanced:
            first = 0x80 | frame_type << 4 | 3  # CodedFramesX
            payload = bytes((first,)) + b"hvc1" + b"\x00\x00\x00\x01\x26"
        else:
            first = frame_type << 4 | 7  # AVC NALUs
            payload = bytes((first, 1, 0, 0, 0)) + b"\x00\x00\x00\x01\x65"
        packets = parse_video(payload, 0)
        parsed = bool(packets) and packets[0].kind == "frame" and packets[0].is_keyframe
        if packets and packets[0].kind == "frame":
            assert parsed == is_keyframe(first) == (first in KEYFRAME_FIRST_BYTES), hex(first)
        assert is_keyframe(first) == (frame_type in (1, 4)), hex(first)
