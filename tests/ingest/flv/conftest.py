"""Real media for the FLV tests: FLV files written by PyAV's bundled FFmpeg muxer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest
from av.audio.stream import AudioStream
from av.video.stream import VideoStream


@dataclass(frozen=True)
class VideoSpec:
    encoder: str
    width: int
    height: int
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AudioSpec:
    encoder: str
    rate: int = 48000
    layout: str = "stereo"


@dataclass(frozen=True)
class MediaSpec:
    video: tuple[VideoSpec, ...] = ()
    audio: tuple[AudioSpec, ...] = ()
    frames: int = 12


_X265_QUIET = {"x265-params": "log-level=error"}

#: name -> what to encode. Sizes like 642x362 are not multiples of the macroblock/CU
#: size, so the SPS must carry cropping (H.264) or a conformance window (HEVC).
MEDIA: dict[str, MediaSpec] = {
    "h264_720p_aac48k": MediaSpec(
        video=(VideoSpec("libx264", 1280, 720, options={"bframes": "3"}),),
        audio=(AudioSpec("aac", 48000, "stereo"),),
    ),
    "h264_642x362_aac44k_mono": MediaSpec(
        video=(VideoSpec("libx264", 642, 362),),
        audio=(AudioSpec("aac", 44100, "mono"),),
    ),
    "h264_444_642x362": MediaSpec(video=(VideoSpec("libx264", 642, 362, "yuv444p"),)),
    "h264_422_642x362": MediaSpec(video=(VideoSpec("libx264", 642, 362, "yuv422p"),)),
    "h264_interlaced_642x364": MediaSpec(
        video=(VideoSpec("libx264", 642, 364, options={"x264-params": "interlaced=1:tff=1"}),),
    ),
    "hevc_642x362_opus": MediaSpec(
        video=(VideoSpec("libx265", 642, 362, options=_X265_QUIET),),
        audio=(AudioSpec("libopus", 48000, "stereo"),),
    ),
    "hevc_main10_1280x720": MediaSpec(
        video=(VideoSpec("libx265", 1280, 720, "yuv420p10le", _X265_QUIET),), frames=4
    ),
    "av1_642x362_flac": MediaSpec(
        video=(VideoSpec("libsvtav1", 642, 362),),
        audio=(AudioSpec("flac", 44100, "mono"),),
    ),
    "vp9_320x240_ac3": MediaSpec(
        video=(VideoSpec("libvpx-vp9", 320, 240),),
        audio=(AudioSpec("ac3", 48000, "stereo"),),
    ),
    "multitrack_h264_hevc_aac_eac3": MediaSpec(
        video=(
            VideoSpec("libx264", 320, 240),
            VideoSpec("libx265", 320, 240, options=_X265_QUIET),
        ),
        audio=(AudioSpec("aac", 48000, "stereo"), AudioSpec("eac3", 48000, "stereo")),
    ),
}


def _fill(frame: av.VideoFrame | av.AudioFrame, seed: int) -> None:
    for index, plane in enumerate(frame.planes):
        value = (seed * 37 + index * 61 + 16) % 200
        plane.update(bytes([value, (value + 3) % 256]) * (plane.buffer_size // 2))


def _write_flv(path: Path, spec: MediaSpec) -> None:
    with av.open(str(path), "w", format="flv") as out:
        video_streams: list[tuple[VideoStream, VideoSpec]] = []
        for v in spec.video:
            stream = out.add_stream(v.encoder, rate=25)
            assert isinstance(stream, VideoStream)
            stream.width = v.width
            stream.height = v.height
            stream.pix_fmt = v.pix_fmt
            stream.options = dict(v.options)
            video_streams.append((stream, v))
        audio_streams: list[tuple[AudioStream, AudioSpec]] = []
        for a in spec.audio:
            audio_stream = out.add_stream(a.encoder, rate=a.rate, layout=a.layout)
            assert isinstance(audio_stream, AudioStream)
            audio_streams.append((audio_stream, a))
        for i in range(spec.frames):
            for stream, v in video_streams:
                frame = av.VideoFrame(v.width, v.height, v.pix_fmt)
                _fill(frame, i)
                frame.pts = i
                out.mux(stream.encode(frame))
        for stream, _ in video_streams:
            out.mux(stream.encode(None))
        for audio_stream, a in audio_streams:
            ctx = audio_stream.codec_context
            samples = ctx.frame_size or 1152
            for i in range(8):
                audio_frame = av.AudioFrame(
                    format=ctx.format.name, layout=a.layout, samples=samples
                )
                for plane in audio_frame.planes:
                    plane.update(bytes(plane.buffer_size))
                audio_frame.sample_rate = a.rate
                audio_frame.pts = i * samples
                out.mux(audio_stream.encode(audio_frame))
            out.mux(audio_stream.encode(None))


@pytest.fixture(scope="session")
def media_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``media_file(name)`` -> path of the FLV file for ``MEDIA[name]``, written once."""
    directory = tmp_path_factory.mktemp("flv-media")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            path = directory / f"{name}.flv"
            _write_flv(path, MEDIA[name])
            cache[name] = path
        return cache[name]

    return get
