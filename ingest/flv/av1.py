"""AV1 and VP8/VP9 sequence headers: av1C (with its sequence header OBU) and vpcC.

AV1CodecConfigurationRecord (AV1 ISOBMFF binding 2.3)::

    marker (1) = 1 | version (7) = 1
    seq_profile (3) | seq_level_idx_0 (5)
    seq_tier_0, high_bitdepth, twelve_bit, monochrome, subsampling x/y, sample position (2)
    reserved (3) | initial_presentation_delay (1 + 4)
    configOBUs: normally the sequence header OBU

The maximum frame size comes from the sequence header OBU (AV1 spec 5.5). e-RTMP also
allows an MPEG2TSSequenceStart carrying the AV1 video descriptor (tag 0x80, length,
then av1C-like fields without OBUs): its profile is read, its size is unknown.

VPCodecConfigurationRecord (vpcC, VP codec ISOBMFF binding)::

    version (8) | flags (24) | profile (8) | level (8) | bit depth (4) ...

carries no picture size.
"""

from __future__ import annotations

from .bitreader import BitReader, BitstreamError

__all__ = ["av1_config_facts", "vpx_config_profile"]

_AV1_PROFILES = {0: "Main", 1: "High", 2: "Professional"}
_OBU_SEQUENCE_HEADER = 1
_AV1_TS_DESCRIPTOR_TAG = 0x80


def av1_config_facts(data: bytes) -> tuple[int | None, int | None, str | None]:
    """``(width, height, profile)`` from an av1C record. Never raises."""
    if len(data) >= 4 and data[0] == _AV1_TS_DESCRIPTOR_TAG and data[2] & 0x80:
        return None, None, _AV1_PROFILES.get(data[3] >> 5)
    if len(data) < 4 or not data[0] & 0x80:
        return None, None, None
    profile = _AV1_PROFILES.get(data[1] >> 5)
    try:
        header = _find_obu(data[4:], _OBU_SEQUENCE_HEADER)
        if header is None:
            return None, None, profile
        width, height = _sequence_header_size(header)
    except BitstreamError:
        return None, None, profile
    return width, height, profile


def _find_obu(data: bytes, wanted: int) -> bytes | None:
    """The payload of the first OBU of type ``wanted`` in a sequence of OBUs."""
    pos = 0
    n = len(data)
    while pos < n:
        header = data[pos]
        obu_type = (header >> 3) & 0x0F
        has_extension = header & 0x04
        has_size = header & 0x02
        pos += 2 if has_extension else 1
        if has_size:
            size, pos = _leb128(data, pos)
        else:
            size = n - pos
        if pos + size > n:
            raise BitstreamError("OBU overruns the configOBUs")
        if obu_type == wanted:
            return data[pos : pos + size]
        pos += size
    return None


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos >= len(data):
            raise BitstreamError("leb128 truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise BitstreamError("leb128 longer than 8 bytes")


def _sequence_header_size(obu: bytes) -> tuple[int, int]:
    r = BitReader(obu)
    r.skip(3)  # seq_profile
    r.skip(1)  # still_picture
    if r.flag():  # reduced_still_picture_header
        r.skip(5)  # seq_level_idx[0]
    else:
        buffer_delay_bits = 0
        decoder_model_info = False
        if r.flag():  # timing_info_present_flag
            r.skip(64)  # num_units_in_display_tick, time_scale
            if r.flag():  # equal_picture_interval
                r.uvlc()  # num_ticks_per_picture_minus_1
            decoder_model_info = r.flag()
            if decoder_model_info:
                buffer_delay_bits = r.u(5) + 1
                r.skip(32)  # num_units_in_decoding_tick
                r.skip(10)  # buffer_removal_time_length_minus_1, frame_presentation...
        initial_display_delay = r.flag()
        for _ in range(r.u(5) + 1):  # operating_points_cnt_minus_1
            r.skip(12)  # operating_point_idc
            if r.u(5) > 7:  # seq_level_idx
                r.skip(1)  # seq_tier
            if decoder_model_info and r.flag():  # decoder_model_present_for_this_op
                r.skip(2 * buffer_delay_bits + 1)
            if initial_display_delay and r.flag():
                r.skip(4)  # initial_display_delay_minus_1
    width_bits = r.u(4) + 1
    height_bits = r.u(4) + 1
    return r.u(width_bits) + 1, r.u(height_bits) + 1


def vpx_config_profile(data: bytes) -> str | None:
    """``"Profile N"`` from a vpcC record (version 1 layout), ``None`` when too short."""
    if len(data) < 6:
        return None
    return f"Profile {data[4]}"
