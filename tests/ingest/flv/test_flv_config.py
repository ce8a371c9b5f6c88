"""parse_video_config on constructed H.264/HEVC/AV1/VP9 sequence headers."""

from __future__ import annotations

import pytest

from ingest.flv import TrackInfo, parse_video_config
from tests.ingest.flv.flv_bits import BitWriter, avcc, escape_rbsp, hvcc

# --- H.264 ------------------------------------------------------------------------------


def avc_sps(
    *,
    profile_idc: int = 100,
    constraints: int = 0,
    level: int = 40,
    chroma_format_idc: int = 1,
    separate_colour_plane: bool = False,
    scaling_lists: dict[int, list[int]] | None = None,
    poc_type: int = 0,
    width_mbs: int = 80,
    height_map_units: int = 45,
    frame_mbs_only: bool = True,
    crop: tuple[int, int, int, int] | None = None,
    sps_id: int = 0,
) -> bytes:
    w = BitWriter().u(8, profile_idc).u(8, constraints).u(8, level).ue(sps_id)
    if profile_idc in (100, 110, 122, 244, 44):
        w.ue(chroma_format_idc)
        if chroma_format_idc == 3:
            w.flag(separate_colour_plane)
        w.ue(0).ue(0).flag(False)
        w.flag(scaling_lists is not None)
        if scaling_lists is not None:
            for i in range(8 if chroma_format_idc != 3 else 12):
                deltas = scaling_lists.get(i)
                w.flag(deltas is not None)
                for delta in deltas or []:
                    w.se(delta)
    w.ue(0).ue(poc_type)
    if poc_type == 0:
        w.ue(2)
    elif poc_type == 1:
        w.flag(False).se(-1).se(3).ue(3).se(1).se(-2).se(5)
    w.ue(4).flag(False).ue(width_mbs - 1).ue(height_map_units - 1).flag(frame_mbs_only)
    if not frame_mbs_only:
        w.flag(True)
    w.flag(True)
    w.flag(crop is not None)
    if crop is not None:
        for value in crop:
            w.ue(value)
    w.flag(False)  # vui_parameters_present_flag
    return b"\x67" + escape_rbsp(w.to_bytes())


def video(codec: str, data: bytes) -> tuple[int | None, int | None, str | None]:
    info = parse_video_config(codec, data)
    assert info.codec == codec
    return info.width, info.height, info.profile


def test_avc_1080p_cropping() -> None:
    sps = avc_sps(width_mbs=120, height_map_units=68, crop=(0, 0, 0, 4))
    assert video("h264", avcc(sps)) == (1920, 1080, "High")


def test_avc_constrained_baseline_odd_crop() -> None:
    sps = avc_sps(
        profile_idc=66, constraints=0xC0, width_mbs=41, height_map_units=23, crop=(1, 6, 0, 3)
    )
    assert video("h264", avcc(sps, profile=66, constraints=0xC0)) == (
        41 * 16 - 2 * 7,
        23 * 16 - 2 * 3,
        "Constrained Baseline",
    )


def test_avc_interlaced_crop_units_double() -> None:
    sps = avc_sps(frame_mbs_only=False, width_mbs=45, height_map_units=18, crop=(0, 0, 0, 2))
    assert video("h264", avcc(sps)) == (720, 18 * 32 - 4 * 2, "High")


@pytest.mark.parametrize(
    ("chroma", "separate", "crop_x", "crop_y", "profile_idc", "profile"),
    [
        (0, False, 1, 1, 100, "High"),  # monochrome
        (2, False, 2, 1, 122, "High 4:2:2"),
        (3, False, 1, 1, 244, "High 4:4:4 Predictive"),
        (3, True, 1, 1, 244, "High 4:4:4 Predictive"),  # separate planes: ChromaArrayType 0
    ],
)
def test_avc_chroma_formats_crop_units(
    chroma: int, separate: bool, crop_x: int, crop_y: int, profile_idc: int, profile: str
) -> None:
    sps = avc_sps(
        profile_idc=profile_idc,
        chroma_format_idc=chroma,
        separate_colour_plane=separate,
        width_mbs=10,
        height_map_units=10,
        crop=(1, 2, 3, 4),
    )
    assert video("h264", avcc(sps)) == (160 - 3 * crop_x, 160 - 7 * crop_y, profile)


def test_avc_scaling_lists_are_skipped() -> None:
    lists = {0: [5] + [0] * 15, 3: [-8], 6: [1] * 64, 7: [2, -2] + [0] * 62}
    sps = avc_sps(scaling_lists=lists, width_mbs=80, height_map_units=45)
    assert video("h264", avcc(sps)) == (1280, 720, "High")


def test_avc_scaling_lists_444_has_twelve() -> None:
    lists = {i: [-8] for i in range(12)}  # next scale 0 at j=0: "use the default list"
    sps = avc_sps(profile_idc=244, chroma_format_idc=3, scaling_lists=lists, width_mbs=4)
    assert video("h264", avcc(sps))[0] == 64


def test_avc_poc_type_1_cycle() -> None:
    assert video("h264", avcc(avc_sps(poc_type=1)))[:2] == (1280, 720)


def test_avc_emulation_prevention_bytes() -> None:
    # A huge width makes long runs of zero bits: 00 00 0x must be escaped in the NAL.
    sps = avc_sps(width_mbs=1 << 20, height_map_units=1 << 17, crop=(0, 0, 0, 0))
    assert b"\x00\x00\x03" in sps
    assert video("h264", avcc(sps))[:2] == ((1 << 20) * 16, (1 << 17) * 16)


def test_avc_annexb_sequence_header() -> None:
    sps = avc_sps(width_mbs=40, height_map_units=30)
    annexb = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01\x68\xee\x3c\x80"
    assert video("h264", annexb) == (640, 480, "High")


def test_avc_broken_sps_keeps_record_profile() -> None:
    record = avcc(b"\x67\x64\x00", profile=77)
    assert video("h264", record) == (None, None, "Main")


def test_avc_record_without_sps() -> None:
    assert video("h264", bytes([1, 66, 0, 30, 0xFF, 0xE0, 0])) == (None, None, "Baseline")


def test_avc_crop_larger_than_picture_is_unknown() -> None:
    sps = avc_sps(width_mbs=1, height_map_units=1, crop=(20, 0, 0, 0))
    assert video("h264", avcc(sps))[:2] == (None, None)


# --- HEVC -------------------------------------------------------------------------------


def hevc_sps(
    *,
    width: int,
    height: int,
    profile_idc: int = 1,
    chroma_format_idc: int = 1,
    separate_colour_plane: bool = False,
    window: tuple[int, int, int, int] | None = None,
    sub_layers: list[tuple[bool, bool]] | None = None,
) -> bytes:
    sub_layers = sub_layers or []
    w = BitWriter().u(4, 0).u(3, len(sub_layers)).flag(True)
    w.u(2, 0).flag(False).u(5, profile_idc).u(32, 1 << (31 - profile_idc))
    w.u(4, 0b1001).u(43, 0).u(1, 0).u(8, 120)
    for profile_present, level_present in sub_layers:
        w.flag(profile_present).flag(level_present)
    if sub_layers:
        for _ in range(len(sub_layers), 8):
            w.u(2, 0)
    for profile_present, level_present in sub_layers:
        if profile_present:
            w.u(8, 0xFF).u(32, 0xFFFFFFFF).u(48, (1 << 48) - 1)  # all ones: 88 bits
        if level_present:
            w.u(8, 0xAA)
    w.ue(0).ue(chroma_format_idc)
    if chroma_format_idc == 3:
        w.flag(separate_colour_plane)
    w.ue(width).ue(height).flag(window is not None)
    if window is not None:
        for value in window:
            w.ue(value)
    w.ue(0).ue(0).ue(4)  # bit depths, log2_max_pic_order_cnt_lsb_minus4 (not read)
    return b"\x42\x01" + escape_rbsp(w.to_bytes())


VPS = b"\x40\x01\x0c\x01"
PPS = b"\x44\x01\xc1\x72"


def test_hevc_conformance_window() -> None:
    sps = hevc_sps(width=648, height=368, window=(0, 3, 0, 3))
    record = hvcc([(32, VPS), (33, sps), (34, PPS)])
    assert video("hevc", record) == (642, 362, "Main")


@pytest.mark.parametrize(
    ("chroma", "separate", "sub_w", "sub_h"),
    [(0, False, 1, 1), (2, False, 2, 1), (3, False, 1, 1), (3, True, 1, 1)],
)
def test_hevc_chroma_formats(chroma: int, separate: bool, sub_w: int, sub_h: int) -> None:
    sps = hevc_sps(
        width=256,
        height=128,
        profile_idc=4,
        chroma_format_idc=chroma,
        separate_colour_plane=separate,
        window=(1, 2, 3, 4),
    )
    assert video("hevc", hvcc([(33, sps)], 4)) == (
        256 - 3 * sub_w,
        128 - 7 * sub_h,
        "Range Extensions",
    )


@pytest.mark.parametrize(
    "sub_layers",
    [
        [(False, False)],
        [(True, True)],
        [(True, False), (False, True), (True, True)],
        [(True, True)] * 7,
    ],
)
def test_hevc_profile_tier_level_with_sub_layers(sub_layers: list[tuple[bool, bool]]) -> None:
    sps = hevc_sps(
        width=1920, height=1088, profile_idc=2, window=(0, 0, 0, 4), sub_layers=sub_layers
    )
    assert video("hevc", hvcc([(33, sps)], 2)) == (1920, 1080, "Main 10")


def test_hevc_annexb_sequence_header() -> None:
    sps = hevc_sps(width=1280, height=720)
    annexb = b"\x00\x00\x00\x01" + VPS + b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + PPS
    assert video("hevc", annexb) == (1280, 720, "Main")


def test_hevc_truncated_record_and_sps() -> None:
    sps = hevc_sps(width=1280, height=720)
    assert video("hevc", hvcc([(33, sps[:8])]))[:2] == (None, None)
    assert video("hevc", hvcc([(33, sps)])[:30])[:2] == (None, None)
    assert video("hevc", b"\x01\x02") == (None, None, None)


# --- AV1, VP9, others ----------------------------------------------------------------------


def av1c(sequence_header: bytes, profile: int = 0) -> bytes:
    obu = bytes([0x0A, len(sequence_header)]) + sequence_header
    return bytes([0x81, profile << 5, 0, 0]) + obu


def test_av1_reduced_still_picture_header() -> None:
    header = BitWriter().u(3, 1).flag(True).flag(True).u(5, 8)
    header.u(4, 11).u(4, 10).u(12, 4095).u(11, 2047).to_bytes()
    assert video("av1", av1c(header.to_bytes(), 1)) == (4096, 2048, "High")


def test_av1_timing_and_decoder_model_info() -> None:
    w = BitWriter().u(3, 0).flag(False).flag(False)
    w.flag(True).u(32, 1).u(32, 25).flag(True).uvlc(0)  # timing_info
    w.flag(True).u(5, 9).u(32, 1).u(5, 3).u(5, 3)  # decoder_model_info
    w.flag(True)  # initial_display_delay_present_flag
    w.u(5, 1)  # two operating points
    w.u(12, 0x101).u(5, 12).flag(True)  # level > 7 -> seq_tier
    w.flag(True).u(10, 5).u(10, 6).flag(False)  # operating_parameters_info
    w.flag(True).u(4, 3)  # initial_display_delay
    w.u(12, 0).u(5, 4)  # level <= 7: no tier
    w.flag(False).flag(False)
    w.u(4, 10).u(4, 9).u(11, 1279).u(10, 719)
    assert video("av1", av1c(w.to_bytes())) == (1280, 720, "Main")


def test_av1_mpeg2ts_descriptor_profile_only() -> None:
    assert video("av1", b"\x80\x04\x81\x20\x0c\x00") == (None, None, "High")


def test_av1_malformed() -> None:
    assert video("av1", b"\x81\x00\x0c\x00\x0a\x7f\x00") == (None, None, "Main")
    assert video("av1", b"\x00") == (None, None, None)


def test_vp9_profile_only() -> None:
    assert video("vp9", bytes.fromhex("01000000021482020202000000")) == (None, None, "Profile 2")
    assert video("vp8", b"\x01") == (None, None, None)


def test_other_video_codecs_name_only() -> None:
    assert parse_video_config("vvc", b"\x01\x02") == TrackInfo("vvc")
    assert parse_video_config(None, b"") == TrackInfo(None)
