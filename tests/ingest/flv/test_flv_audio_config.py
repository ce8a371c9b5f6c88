"""parse_audio_config on constructed AudioSpecificConfig, OpusHead, STREAMINFO and
AC-3/E-AC-3/MP3 frame headers."""

from __future__ import annotations

import pytest

from ingest.flv import parse_audio_config
from tests.ingest.flv.flv_bits import BitWriter

# --- AAC ----------------------------------------------------------------------------------


Facts = tuple[int | None, int | None, str | None]


def audio(
    codec: str | None, data: bytes, rate: int | None = None, channels: int | None = None
) -> Facts:
    info = parse_audio_config(codec, data, rate, channels)
    return info.sample_rate, info.channels, info.profile


@pytest.mark.parametrize(
    ("asc", "expected"),
    [
        ("1190", (48000, 2, "LC")),
        ("1208", (44100, 1, "LC")),
        ("1310", (24000, 2, "LC")),
        ("0990", (48000, 2, "Main")),
        ("11b0", (48000, 6, "LC")),
        ("11f0", (48000, 8, "LC")),
        ("1180", (48000, None, "LC")),  # channelConfiguration 0: program config element
        ("1588", (8000, 1, "LC")),
        ("1680", (None, None, "LC")),  # reserved frequency index 13, channel config 0
    ],
)
def test_aac_audio_specific_config(asc: str, expected: tuple[object, ...]) -> None:
    assert audio("aac", bytes.fromhex(asc), 44100, 2) == expected


def test_aac_he_aac_explicit_sbr_reports_output_rate() -> None:
    asc = BitWriter().u(5, 5).u(4, 6).u(4, 2).u(4, 3).u(5, 2).to_bytes(trailing=False)
    assert audio("aac", asc) == (48000, 2, "HE-AAC")


def test_aac_he_aac_v2_mono_core_decodes_to_stereo() -> None:
    asc = BitWriter().u(5, 29).u(4, 6).u(4, 1).u(4, 3).u(5, 2).to_bytes(trailing=False)
    assert audio("aac", asc) == (48000, 2, "HE-AACv2")


def test_aac_object_type_escape_and_explicit_rate() -> None:
    asc = BitWriter().u(5, 31).u(6, 10).u(4, 15).u(24, 22000).u(4, 2).to_bytes(trailing=False)
    assert audio("aac", asc) == (22000, 2, "xHE-AAC")


def test_aac_truncated_or_empty_ignores_lying_header() -> None:
    assert audio("aac", b"", 44100, 2) == (None, None, None)
    assert audio("aac", b"\x11", 44100, 2) == (None, None, "LC")


# --- Opus, FLAC, AC-3, MP3, others -------------------------------------------------------


def test_opus_head() -> None:
    head = b"OpusHead\x01\x01\x38\x01\x44\xac\x00\x00\x00\x00\x00"
    assert audio("opus", head) == (48000, 1, None)
    assert audio("opus", b"NotOpus!" + head[8:]) == (48000, None, None)


STREAMINFO = bytes.fromhex("10001000000000000000" + "0ac442f0") + bytes(20)


def test_flac_streaminfo_forms() -> None:
    assert len(STREAMINFO) == 34
    expected = (44100, 2, None)
    assert audio("flac", STREAMINFO) == expected
    assert audio("flac", b"\x80\x00\x00\x22" + STREAMINFO) == expected
    marker_form = b"fLaC" + b"\x04\x00\x00\x02ab" + b"\x80\x00\x00\x22" + STREAMINFO
    assert audio("flac", marker_form) == expected
    assert audio("flac", b"fLaC\x84\x00\x00\x00") == (None, None, None)
    assert audio("flac", STREAMINFO[:10]) == (None, None, None)


def ac3_header(fscod: int, acmod: int, lfe: bool) -> bytes:
    w = BitWriter().u(16, 0x0B77).u(16, 0).u(2, fscod).u(6, 20).u(5, 8).u(3, 0).u(3, acmod)
    if acmod & 1 and acmod != 1:
        w.u(2, 0)
    if acmod & 4:
        w.u(2, 0)
    if acmod == 2:
        w.u(2, 0)
    return w.flag(lfe).u(16, 0).to_bytes(trailing=False)


@pytest.mark.parametrize(
    ("fscod", "acmod", "lfe", "expected"),
    [
        (0, 7, True, (48000, 6, "AC-3")),
        (1, 2, False, (44100, 2, "AC-3")),
        (2, 1, False, (32000, 1, "AC-3")),
        (0, 5, True, (48000, 5, "AC-3")),
        (3, 2, False, (None, 2, "AC-3")),
    ],
)
def test_ac3_frame_header(fscod: int, acmod: int, lfe: bool, expected: tuple[object, ...]) -> None:
    assert audio("ac3", ac3_header(fscod, acmod, lfe)) == expected


def test_eac3_frame_header_half_rate() -> None:
    w = BitWriter().u(16, 0x0B77).u(2, 0).u(3, 0).u(11, 100).u(2, 3).u(2, 1).u(3, 7).flag(True)
    frame = w.u(5, 16).u(16, 0).to_bytes(trailing=False)
    assert audio("eac3", frame) == (22050, 6, "E-AC-3")


def test_ac3_without_frame_uses_nothing() -> None:
    assert audio("ac3", b"") == (None, None, None)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fffb9064", (44100, 2, None)),
        ("fff390c4", (22050, 1, None)),  # MPEG-2
        ("ffe39404", (12000, 2, None)),  # MPEG-2.5
        ("ffeb9064", (None, None, None)),  # reserved version
        ("00000000", (None, None, None)),
    ],
)
def test_mp3_frame_header(header: str, expected: tuple[object, ...]) -> None:
    assert audio("mp3", bytes.fromhex(header)) == expected


def test_header_values_fill_in_for_codecs_without_config() -> None:
    assert audio("speex", b"", 16000, 1) == (16000, 1, None)
    assert audio("mp3", b"junk", 44100, 2) == (44100, 2, None)
    assert audio(None, b"", None, None) == (None, None, None)
