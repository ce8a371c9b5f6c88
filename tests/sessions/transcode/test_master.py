"""Master playlists and codec strings: rendered, and read back by FFmpeg's HLS demuxer."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.media import FlvTag
from ingest.flv import parse_audio, parse_video
from ingest.profiles import Profile
from sessions.hls.codecs import audio_codec_string, codecs_attribute, video_codec_string
from sessions.hls.master import Variant, measured_bandwidth, render_master, write_master
from sessions.hls.playlist import SegmentInfo

from .media import ffprobe_json, run_inline


def _segment(duration: float, size: int) -> SegmentInfo:
    return SegmentInfo(0, "s.ts", duration, size, 0.0, True, False, 0.0)


def test_render_master() -> None:
    text = render_master(
        [
            Variant(
                "abc/index.m3u8", 2_900_000, 2_600_000, 1280, 720, 30.0, "avc1.64001f,mp4a.40.2"
            ),
            Variant("abc/360p/index.m3u8", 1_000_000, None, 640, 360, 29.97),
            Variant("abc/audio.m3u8", 130_000),
        ]
    )
    assert text == (
        "#EXTM3U\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=2900000,AVERAGE-BANDWIDTH=2600000,CODECS="avc1.64001f,'
        'mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000\n'
        "abc/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=640x360,FRAME-RATE=29.970\n"
        "abc/360p/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=130000\n"
        "abc/audio.m3u8\n"
    )
    with pytest.raises(ValueError, match="at least one variant"):
        render_master([])
    with pytest.raises(ValueError, match="BANDWIDTH must be positive"):
        render_master([Variant("x.m3u8", 0)])


def test_measured_bandwidth_is_the_peak_and_the_average_segment_rate() -> None:
    segments = [_segment(2.0, 250_000), _segment(2.0, 500_000), _segment(0.0, 10)]
    assert measured_bandwidth(segments) == (2_000_000, 1_500_000)
    assert measured_bandwidth([]) is None


@pytest.mark.parametrize(
    ("codec", "record", "expected"),
    [
        ("h264", bytes([1, 0x64, 0x00, 0x1F, 0xFF]), "avc1.64001f"),
        ("h264", b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x42\xc0\x1e\xaa", "avc1.42c01e"),
        ("hevc", bytes([1, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93]), "hvc1.1.6.L93.B0"),
        ("hevc", bytes([1, 0x22, 0x20, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 120]), "hvc1.2.4.H120.90"),
        ("av1", bytes([0x81, 0x08, 0x0C, 0x00]), "av01.0.08M.08"),
        ("av1", bytes([0x81, 0x2D, 0xC0, 0x00]), "av01.1.13H.10"),
        ("vp9", bytes([1, 0, 0, 0, 0, 31, 0x80, 0]), "vp09.00.31.08"),
        ("h264", b"", None),
        ("vp8", b"\x01", None),
    ],
)
def test_video_codec_strings(codec: str, record: bytes, expected: str | None) -> None:
    assert video_codec_string(codec, record) == expected


def test_audio_codec_strings() -> None:
    assert audio_codec_string("aac", bytes([0x12, 0x10])) == "mp4a.40.2"
    assert audio_codec_string("aac", bytes([0x2B, 0x92, 0x08, 0x00])) == "mp4a.40.5"
    assert audio_codec_string("aac", bytes([0xF8, 0xE0])) == "mp4a.40.39"  # escape: 32 + 7
    assert audio_codec_string("aac") is None
    assert [audio_codec_string(c) for c in ("mp3", "opus", "flac", "ac3", "eac3")] == [
        "mp4a.40.34",
        "opus",
        "fLaC",
        "ac-3",
        "ec-3",
    ]
    assert codecs_attribute("avc1.64001f", None, "mp4a.40.2") == "avc1.64001f,mp4a.40.2"
    assert codecs_attribute(None) is None


@pytest.mark.slow
def test_a_master_playlist_of_a_session_and_its_renditions_is_what_ffmpeg_reads(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """The source and two renditions of a real clip, offered by one master playlist:
    FFmpeg's HLS demuxer finds the three variants, their bit rates, sizes and codecs."""
    tags = transcode_clips["small"]
    ladder = [Profile("180p", 240, 180, 300_000), Profile("120p", 160, 120, 150_000)]
    run = run_inline(tags, tmp_path, ladder)
    video = next(p for t in tags if t.tag_type == 9 for p in parse_video(t.body, t.timestamp))
    audio = next(p for t in tags if t.tag_type == 8 for p in parse_audio(t.body, t.timestamp))
    assert video.kind == audio.kind == "config" and video.codec and audio.codec
    source_codecs = codecs_attribute(
        video_codec_string(video.codec, video.data), audio_codec_string(audio.codec, audio.data)
    )
    peak, average = measured_bandwidth(run.source) or (0, 0)
    variants = [Variant("vod.m3u8", peak, average, 320, 240, 30.0, source_codecs)]
    for profile, counted in zip(ladder, run.report.profiles, strict=True):
        peak, average = measured_bandwidth(run.segments[profile.name]) or (0, 0)
        variants.append(
            Variant(
                f"{profile.name}/vod.m3u8",
                peak,
                average,
                profile.width,
                profile.height,
                counted.fps,
                counted.codecs,
            )
        )
    write_master(tmp_path / "master.m3u8", variants)

    found = ffprobe_json(
        tmp_path / "master.m3u8",
        "-show_programs",
        "-show_entries",
        "program_tags=variant_bitrate:stream=codec_type,codec_name,width,height",
    )
    programs = found["programs"]
    assert [int(p["tags"]["variant_bitrate"]) for p in programs] == [v.bandwidth for v in variants]
    sizes = [
        next((s["width"], s["height"]) for s in p["streams"] if s["codec_type"] == "video")
        for p in programs
    ]
    assert sizes == [(320, 240), (240, 180), (160, 120)]
    for program in programs:
        kinds = {s["codec_type"]: s["codec_name"] for s in program["streams"]}
        assert kinds == {"video": "h264", "audio": "aac"}
    assert source_codecs is not None and source_codecs.startswith("avc1.")
    assert all(v.codecs and v.codecs.endswith(",mp4a.40.2") for v in variants)
