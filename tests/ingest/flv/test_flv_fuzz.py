"""Random bytes never make the parsers raise anything but FlvError (tag parsers) or
anything at all (configuration parsers)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.flv import FlvError, parse_audio, parse_audio_config, parse_video, parse_video_config
from tests.ingest.flv.flv_bits import avcc, hvcc

#: Header prefixes that steer random tails into the deeper paths (enhanced, multitrack,
#: ModEx, AVC/AAC).
VIDEO_PREFIXES = [
    b"",
    b"\x17\x01",
    b"\x1c\x00\x00\x00\x00",
    b"\x91hvc1",
    b"\x91avc1",
    b"\x93av01",
    b"\x96",
    b"\x96\x01hvc1",
    b"\x96\x11hvc1",
    b"\x96\x21",
    b"\x97",
    b"\x97\x02\x00\x00\x01\x06",
    b"\xd0",
    b"\xd4vp09",
]
AUDIO_PREFIXES = [
    b"",
    b"\xaf",
    b"\xaf\x00",
    b"\x90Opus",
    b"\x94Opus",
    b"\x95",
    b"\x95\x11mp4a",
    b"\x95\x21",
    b"\x97",
    b"\x97\x00\x00\x05",
]
VIDEO_CODECS = ["h264", "hevc", "av1", "vp9", "vp8", "vvc", None]
AUDIO_CODECS = ["aac", "opus", "flac", "ac3", "eac3", "mp3", "speex", None]

#: Valid-looking starts for configuration records, so random tails reach the SPS parsers.
CONFIG_PREFIXES = {
    "h264": [
        b"",
        avcc(b"\x67\x64\x00\x28"),
        b"\x00\x00\x00\x01\x67",
        bytes([1, 100, 0, 40, 0xFF, 0xE1]),
    ],
    "hevc": [
        b"",
        hvcc([(33, b"\x42\x01\x01")]),
        b"\x00\x00\x01\x42\x01",
        b"\x01" + bytes(22) + b"\x01\xa1\x00\x01",
    ],
    "av1": [b"", b"\x81\x00\x0c\x00", b"\x81\x00\x0c\x00\x0a", b"\x81\x00\x0c\x00\x0a\x0b\x00"],
}


@settings(max_examples=300)
@given(
    prefix=st.sampled_from(VIDEO_PREFIXES),
    tail=st.binary(max_size=64),
    ts=st.integers(0, 2**32 - 1),
)
def test_parse_video_only_raises_flv_error(prefix: bytes, tail: bytes, ts: int) -> None:
    try:
        packets = parse_video(prefix + tail, ts)
    except FlvError:
        return
    for p in packets:
        assert p.dts == ts
        assert 0 <= p.track_id <= 255


@settings(max_examples=300)
@given(
    prefix=st.sampled_from(AUDIO_PREFIXES),
    tail=st.binary(max_size=64),
    ts=st.integers(0, 2**32 - 1),
)
def test_parse_audio_only_raises_flv_error(prefix: bytes, tail: bytes, ts: int) -> None:
    try:
        packets = parse_audio(prefix + tail, ts)
    except FlvError:
        return
    for p in packets:
        assert p.dts == ts


@given(payload=st.binary(max_size=128))
def test_parse_video_plain_random_bytes(payload: bytes) -> None:
    with contextlib.suppress(FlvError):
        parse_video(payload, 0)


@given(payload=st.binary(max_size=128))
def test_parse_audio_plain_random_bytes(payload: bytes) -> None:
    with contextlib.suppress(FlvError):
        parse_audio(payload, 0)


@pytest.mark.parametrize("codec", VIDEO_CODECS)
@settings(max_examples=150)
@given(data=st.binary(max_size=96), choice=st.integers(0, 3))
def test_parse_video_config_never_raises(codec: str | None, data: bytes, choice: int) -> None:
    prefixes = CONFIG_PREFIXES.get(codec or "", [b""])
    info = parse_video_config(codec, prefixes[choice % len(prefixes)] + data)
    assert info.codec == codec
    assert info.width is None or info.width > 0
    assert info.height is None or info.height > 0


@pytest.mark.parametrize("codec", AUDIO_CODECS)
@settings(max_examples=150)
@given(data=st.binary(max_size=64))
def test_parse_audio_config_never_raises(codec: str | None, data: bytes) -> None:
    info = parse_audio_config(codec, data, 44100, 2)
    assert info.codec == codec
