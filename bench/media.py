"""Media for benchmarks and tests: synthetic clips encoded with PyAV, and FLV files read
tag by tag (each tag body is what one RTMP audio/video message carries)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ingest.rtmp.events import AUDIO, VIDEO


@dataclass(frozen=True)
class FlvTag:
    #: An FLV tag type is the RTMP message type that carries its body (``AUDIO``, ``VIDEO``,
    #: 18 for script data).
    tag_type: int
    timestamp: int
    body: bytes


def read_flv_tags(path: Path) -> list[FlvTag]:
    """Every tag of an FLV file (type, 32-bit timestamp, body)."""
    data = path.read_bytes()
    if data[:3] != b"FLV":
        raise ValueError(f"{path} is not an FLV file")
    pos = int.from_bytes(data[5:9], "big") + 4
    tags: list[FlvTag] = []
    while pos + 11 <= len(data):
        tag_type = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        timestamp = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11 : pos + 11 + size]
        if len(body) != size:
            raise ValueError(f"{path}: tag at offset {pos} is truncated")
        tags.append(FlvTag(tag_type, timestamp, body))
        pos += 11 + size + 4
    return tags


def make_benchmark_clip(path: Path, seconds: float) -> Path:
    """The clip every benchmark publishes: 1280x720 at 30 fps, H.264 at ~2.4 Mb/s with a
    2 s GOP, plus AAC at 48 kHz (~2.75 Mb/s on the wire)."""
    return make_flv(path, size=(1280, 720), fps=30, gop=60, seconds=seconds, bitrate=2_400_000)


def media_tags(path: Path) -> list[FlvTag]:
    """The audio and video tags of an FLV file, in order."""
    return [t for t in read_flv_tags(path) if t.tag_type in (AUDIO, VIDEO)]


def make_flv(
    path: Path,
    *,
    video: str | None = "libx264",
    audio: str | None = "aac",
    seconds: float = 2.0,
    fps: int = 30,
    size: tuple[int, int] = (320, 240),
    gop: int = 30,
    bitrate: int | None = None,
) -> Path:
    """Encode a synthetic clip (moving gradient, a tone) into an FLV file with PyAV."""
    with av.open(str(path), "w", format="flv") as out:
        vstream = _video_stream(out, video, fps, size, gop, bitrate) if video else None
        astream: av.AudioStream | None = None
        if audio is not None:
            added = out.add_stream(audio, rate=48000)
            assert isinstance(added, av.AudioStream)
            added.layout = "stereo"
            astream = added
        samples = 1024
        video_frames = int(seconds * fps) if vstream is not None else 0
        audio_frames = int(seconds * 48000 / samples) if astream is not None else 0
        # Encode in presentation order across both streams so the muxer can interleave.
        schedule = sorted(
            [(i / fps, 0, i) for i in range(video_frames)]
            + [(i * samples / 48000, 1, i) for i in range(audio_frames)]
        )
        for _, kind, i in schedule:
            if kind == 0 and vstream is not None:
                out.mux(vstream.encode(_video_frame(size, i, fps, noisy=bitrate is not None)))
            elif astream is not None:
                out.mux(astream.encode(_audio_frame(i, samples)))
        if vstream is not None:
            out.mux(vstream.encode(None))
        if astream is not None:
            out.mux(astream.encode(None))
    return path


def _video_stream(
    out: av.container.OutputContainer,
    codec: str,
    fps: int,
    size: tuple[int, int],
    gop: int,
    bitrate: int | None,
) -> av.VideoStream:
    stream = out.add_stream(codec, rate=fps)
    assert isinstance(stream, av.VideoStream)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.codec_context.gop_size = gop
    if bitrate is not None:
        stream.codec_context.bit_rate = bitrate
    options = {"preset": "ultrafast"}
    if codec == "libx265":
        options["x265-params"] = f"log-level=error:keyint={gop}:min-keyint={gop}"
    stream.codec_context.options = options
    return stream


def _video_frame(size: tuple[int, int], index: int, fps: int, *, noisy: bool) -> av.VideoFrame:
    """A moving gradient; with ``noisy``, seeded noise that makes the encoder spend its
    whole bitrate, as camera content does."""
    width, height = size
    frame = av.VideoFrame(width, height, "yuv420p")
    rng = random.Random(index)
    for n, plane in enumerate(frame.planes):
        if noisy:
            plane.update(rng.randbytes(plane.buffer_size))
        else:
            row = bytes((x + index * 4 + n * 50) & 0xFF for x in range(plane.line_size))
            plane.update(row * (plane.buffer_size // plane.line_size))
    frame.pts = index
    frame.time_base = Fraction(1, fps)
    return frame


def _audio_frame(index: int, samples: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
    for plane in frame.planes:
        plane.update(bytes((index * 7 + k) & 0x3F for k in range(plane.buffer_size)))
    frame.sample_rate = 48000
    frame.pts = index * samples
    frame.time_base = Fraction(1, 48000)
    return frame
