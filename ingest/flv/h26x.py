"""H.264 and HEVC sequence headers: decoder configuration records and SPS.

Only what a server wants to know about a track is extracted: the coded picture size
after cropping and the profile. References: ISO/IEC 14496-15 (avcC, hvcC records),
ITU-T H.264 7.3.2.1.1 (seq_parameter_set_rbsp) and ITU-T H.265 7.3.2.2
(seq_parameter_set_rbsp) and 7.3.3 (profile_tier_level).
"""

from __future__ import annotations

from .bitreader import BitReader, BitstreamError, annexb_nal_units, unescape_rbsp

__all__ = ["SpsFacts", "avc_config_facts", "hevc_config_facts"]

#: ``(width, height, profile)``; any of them ``None`` when it could not be read.
SpsFacts = tuple[int | None, int | None, str | None]

_AVC_NAL_SPS = 7
_HEVC_NAL_SPS = 33

_AVC_PROFILES = {
    66: "Baseline",
    77: "Main",
    88: "Extended",
    100: "High",
    110: "High 10",
    122: "High 4:2:2",
    244: "High 4:4:4 Predictive",
    44: "CAVLC 4:4:4 Intra",
}
#: profile_idc values whose SPS carries chroma_format_idc, bit depths and scaling lists.
_AVC_HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))

_HEVC_PROFILES = {
    1: "Main",
    2: "Main 10",
    3: "Main Still Picture",
    4: "Range Extensions",
    5: "High Throughput",
    9: "Screen Content Coding",
}


def _avc_profile_name(profile_idc: int, constraints: int) -> str:
    if profile_idc == 66 and constraints & 0x40:
        return "Constrained Baseline"
    return _AVC_PROFILES.get(profile_idc, f"profile {profile_idc}")


# --- H.264 ---------------------------------------------------------------------------


def avc_config_facts(data: bytes) -> SpsFacts:
    """Width, height and profile from an AVCDecoderConfigurationRecord (or, leniently,
    an Annex B sequence header). Never raises."""
    profile: str | None = None
    sps: bytes | None = None
    if len(data) >= 4 and data[0] == 1:
        profile = _avc_profile_name(data[1], data[2])
        sps = _first_avc_record_sps(data)
    elif data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01":
        sps = next((u for u in annexb_nal_units(data) if u[0] & 0x1F == _AVC_NAL_SPS), None)
    if sps is None:
        return None, None, profile
    try:
        return _parse_avc_sps(unescape_rbsp(sps[1:]))
    except BitstreamError:
        return None, None, profile


def _first_avc_record_sps(data: bytes) -> bytes | None:
    if len(data) < 6:
        return None
    count = data[5] & 0x1F
    pos = 6
    for _ in range(count):
        if pos + 2 > len(data):
            return None
        size = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        nal = data[pos : pos + size]
        pos += size
        if len(nal) == size and size > 1 and nal[0] & 0x1F == _AVC_NAL_SPS:
            return nal
    return None


def _skip_scaling_list(reader: BitReader, size: int) -> None:
    last = 8
    next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            next_scale = (last + reader.se() + 256) % 256
        if next_scale != 0:
            last = next_scale


def _parse_avc_sps(rbsp: bytes) -> SpsFacts:
    r = BitReader(rbsp)
    profile_idc = r.u(8)
    constraints = r.u(8)
    r.skip(8)  # level_idc
    profile = _avc_profile_name(profile_idc, constraints)
    r.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_colour_plane = False
    if profile_idc in _AVC_HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc > 3:
            raise BitstreamError(f"chroma_format_idc {chroma_format_idc}")
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        cycle = r.ue()
        if cycle > 255:
            raise BitstreamError(f"num_ref_frames_in_pic_order_cnt_cycle {cycle}")
        for _ in range(cycle):
            r.se()
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if r.flag():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        if chroma_format_idc == 0 or separate_colour_plane:
            crop_x, crop_y = 1, 2 - frame_mbs_only
        else:
            crop_x = 1 if chroma_format_idc == 3 else 2
            crop_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    if width <= 0 or height <= 0:
        return None, None, profile
    return width, height, profile


# --- HEVC ----------------------------------------------------------------------------


def hevc_config_facts(data: bytes) -> SpsFacts:
    """Width, height and profile from an HEVCDecoderConfigurationRecord (or, leniently,
    an Annex B sequence header). Never raises."""
    profile: str | None = None
    sps: bytes | None = None
    if len(data) >= 23 and data[0] == 1:
        profile = _HEVC_PROFILES.get(data[1] & 0x1F)
        sps = _first_hevc_record_sps(data)
    elif data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01":
        sps = next(
            (
                u
                for u in annexb_nal_units(data)
                if len(u) > 2 and (u[0] >> 1) & 0x3F == _HEVC_NAL_SPS
            ),
            None,
        )
    if sps is None:
        return None, None, profile
    try:
        return _parse_hevc_sps(unescape_rbsp(sps[2:]))
    except BitstreamError:
        return None, None, profile


def _first_hevc_record_sps(data: bytes) -> bytes | None:
    arrays = data[22]
    pos = 23
    n = len(data)
    for _ in range(arrays):
        if pos + 3 > n:
            return None
        nal_type = data[pos] & 0x3F
        count = int.from_bytes(data[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            if pos + 2 > n:
                return None
            size = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
            nal = data[pos : pos + size]
            pos += size
            if len(nal) != size:
                return None
            if nal_type == _HEVC_NAL_SPS and size > 2:
                return nal
    return None


def _skip_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> int:
    """Skip profile_tier_level(1, max_sub_layers_minus1); return general_profile_idc."""
    r.skip(3)  # general_profile_space, general_tier_flag
    profile_idc = r.u(5)
    # compatibility flags (32), progressive/interlaced/non-packed/frame-only (4),
    # 43 constraint bits, 1 reserved/inbld bit, general_level_idc (8)
    r.skip(32 + 4 + 43 + 1 + 8)
    profile_present = []
    level_present = []
    for _ in range(max_sub_layers_minus1):
        profile_present.append(r.flag())
        level_present.append(r.flag())
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for i in range(max_sub_layers_minus1):
        if profile_present[i]:
            r.skip(88)
        if level_present[i]:
            r.skip(8)
    return profile_idc


def _parse_hevc_sps(rbsp: bytes) -> SpsFacts:
    r = BitReader(rbsp)
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.u(3)
    r.skip(1)  # sps_temporal_id_nesting_flag
    profile_idc = _skip_profile_tier_level(r, max_sub_layers_minus1)
    profile = _HEVC_PROFILES.get(profile_idc, f"profile {profile_idc}")
    r.ue()  # sps_seq_parameter_set_id
    chroma_format_idc = r.ue()
    if chroma_format_idc > 3:
        raise BitstreamError(f"chroma_format_idc {chroma_format_idc}")
    separate_colour_plane = chroma_format_idc == 3 and r.flag()
    width = r.ue()
    height = r.ue()
    if r.flag():  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        if separate_colour_plane or chroma_format_idc in (0, 3):
            sub_w, sub_h = 1, 1
        else:
            sub_w, sub_h = 2, (2 if chroma_format_idc == 1 else 1)
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    if width <= 0 or height <= 0:
        return None, None, profile
    return width, height, profile
