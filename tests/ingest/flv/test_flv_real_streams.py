"""FLV files written by FFmpeg (through PyAV), tag bodies fed to the parsers as RTMP
messages would arrive, and the results checked against the encoder settings and against
what FFmpeg's own FLV demuxer reports for the same file."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from ingest.flv import (
    AudioPacket,
    VideoPacket,
    parse_audio,
    parse_audio_config,
    parse_video,
    parse_video_config,
)
from tests.support.media import read_flv_tags

MediaFile = Callable[[str], Path]

#: name -> per track (codec, track_id): expected (width, height, profile) for video,
#: (sample_rate, channels) for audio.
EXPECTED_VIDEO: dict[str, dict[tuple[str, int], tuple[int | None, int | None, str]]] = {
    "h264_720p_aac48k": {("h264", 0): (1280, 720, "High")},
    "h264_642x362_aac44k_mono": {("h264", 0): (642, 362, "High")},
    "h264_444_642x362": {("h264", 0): (642, 362, "High 4:4:4 Predictive")},
    "h264_422_642x362": {("h264", 0): (642, 362, "High 4:2:2")},
    "h264_interlaced_642x364": {("h264", 0): (642, 364, "High")},
    "hevc_642x362_opus": {("hevc", 0): (642, 362, "Main")},
    "hevc_main10_1280x720": {("hevc", 0): (1280, 720, "Main 10")},
    "av1_642x362_flac": {("av1", 0): (642, 362, "Main")},
    "vp9_320x240_ac3": {("vp9", 0): (None, None, "Profile 0")},
    "multitrack_h264_hevc_aac_eac3": {
        ("h264", 0): (320, 240, "High"),
        ("hevc", 1): (320, 240, "Main"),
    },
}
EXPECTED_AUDIO: dict[str, dict[tuple[str, int], tuple[int, int]]] = {
    "h264_720p_aac48k": {("aac", 0): (48000, 2)},
    "h264_642x362_aac44k_mono": {("aac", 0): (44100, 1)},
    "hevc_642x362_opus": {("opus", 0): (48000, 2)},
    "av1_642x362_flac": {("flac", 0): (44100, 1)},
    "vp9_320x240_ac3": {("ac3", 0): (48000, 2)},
    "multitrack_h264_hevc_aac_eac3": {("aac", 0): (48000, 2), ("eac3", 1): (48000, 2)},
}
NAMES = list(EXPECTED_VIDEO)

#: FFmpeg decoder names that differ from the codec name.
_DECODER_CODECS = {"libdav1d": "av1"}


def parse_file(path: Path) -> tuple[list[VideoPacket], list[AudioPacket]]:
    video: list[VideoPacket] = []
    audio: list[AudioPacket] = []
    for tag in read_flv_tags(path):
        if tag.tag_type == 9:
            video += parse_video(tag.body, tag.timestamp)
        elif tag.tag_type == 8:
            audio += parse_audio(tag.body, tag.timestamp)
    return video, audio


def first_by_track(
    packets: list[VideoPacket] | list[AudioPacket], kind: str
) -> dict[tuple[str, int], bytes]:
    found: dict[tuple[str, int], bytes] = {}
    for p in packets:
        if p.kind == kind and p.codec is not None:
            found.setdefault((p.codec, p.track_id), p.data)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_video_sequence_headers_give_encoded_size(media_file: MediaFile, name: str) -> None:
    video, _ = parse_file(media_file(name))
    configs = first_by_track(video, "config")
    facts = {}
    for (codec, track), data in configs.items():
        info = parse_video_config(codec, data)
        facts[codec, track] = (info.width, info.height, info.profile)
    assert facts == EXPECTED_VIDEO[name]


@pytest.mark.parametrize("name", list(EXPECTED_AUDIO))
def test_audio_sequence_headers_give_rate_and_channels(media_file: MediaFile, name: str) -> None:
    _, audio = parse_file(media_file(name))
    configs = first_by_track(audio, "config")
    frames = first_by_track(audio, "frame")
    facts = {}
    for (codec, track), data in configs.items():
        if codec in ("ac3", "eac3"):  # no configuration: read the first frame's header
            data = frames[codec, track]
        info = parse_audio_config(codec, data)
        assert info.sample_rate is not None and info.channels is not None
        facts[codec, track] = (info.sample_rate, info.channels)
    assert facts == EXPECTED_AUDIO[name]


def demuxed(path: Path) -> tuple[dict[str, list[tuple[int, ...]]], dict[str, bytes]]:
    """Per codec: (dts, pts, is_keyframe, size) of every packet FFmpeg's demuxer returns,
    and each stream's extradata."""
    packets: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    extradata: dict[str, bytes] = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            name = stream.codec_context.name
            extradata[_DECODER_CODECS.get(name, name)] = stream.codec_context.extradata or b""
        for packet in container.demux():
            if packet.size == 0 or packet.dts is None:
                continue
            name = packet.stream.codec_context.name
            codec = _DECODER_CODECS.get(name, name)
            keyframe = packet.is_keyframe if packet.stream.type == "video" else True
            pts = packet.pts if packet.pts is not None else packet.dts
            packets[codec].append((packet.dts, pts, keyframe, packet.size))
    return dict(packets), extradata


@pytest.mark.parametrize("name", NAMES)
def test_frames_match_ffmpeg_demuxer(media_file: MediaFile, name: str) -> None:
    path = media_file(name)
    video, audio = parse_file(path)
    ours: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for v in video:
        if v.kind == "frame" and v.data and v.codec is not None:
            ours[v.codec].append((v.dts, v.pts, v.is_keyframe, len(v.data)))
    for a in audio:
        if a.kind == "frame" and a.data and a.codec is not None:
            ours[a.codec].append((a.dts, a.dts, True, len(a.data)))
    theirs, _ = demuxed(path)
    assert set(ours) == set(theirs)
    for codec, frames in theirs.items():
        assert ours[codec] == frames, codec
    video_frames = [v for v in video if v.kind == "frame"]
    assert video_frames[0].is_keyframe
    assert sum(v.is_keyframe for v in video_frames) >= 1


@pytest.mark.parametrize("name", NAMES)
def test_sequence_headers_equal_demuxer_extradata(media_file: MediaFile, name: str) -> None:
    path = media_file(name)
    video, audio = parse_file(path)
    configs = {codec: data for (codec, _), data in first_by_track(video, "config").items()}
    configs |= {codec: data for (codec, _), data in first_by_track(audio, "config").items()}
    _, extradata = demuxed(path)
    assert configs == extradata


def test_h264_stream_has_reordered_frames_with_positive_cts(media_file: MediaFile) -> None:
    video, _ = parse_file(media_file("h264_720p_aac48k"))
    frames = [v for v in video if v.kind == "frame"]
    assert any(v.cts > 0 for v in frames)
    assert [v.pts for v in frames] != sorted(v.pts for v in frames)  # B-frames
    assert video[-1].kind == "end"


def test_enhanced_streams_carry_metadata_and_multichannel(media_file: MediaFile) -> None:
    video, audio = parse_file(media_file("hevc_642x362_opus"))
    assert [v.fourcc for v in video if v.kind == "metadata"] == ["hvc1"]
    assert any(v.data.startswith(b"\x02\x00\x09colorInfo") for v in video)
    assert [(a.kind, a.channels) for a in audio if a.kind == "multichannel"] == [
        ("multichannel", 2)
    ]


def test_multitrack_file_uses_multitrack_messages(media_file: MediaFile) -> None:
    path = media_file("multitrack_h264_hevc_aac_eac3")
    multitrack_video = [
        t for t in read_flv_tags(path) if t.tag_type == 9 and t.body[0] & 0x8F == 0x86
    ]
    multitrack_audio = [t for t in read_flv_tags(path) if t.tag_type == 8 and t.body[0] == 0x95]
    assert multitrack_video and multitrack_audio
    video, audio = parse_file(path)
    assert {(v.codec, v.track_id) for v in video if v.kind == "frame"} == {
        ("h264", 0),
        ("hevc", 1),
    }
    assert {(a.codec, a.track_id) for a in audio if a.kind == "frame"} == {("aac", 0), ("eac3", 1)}
