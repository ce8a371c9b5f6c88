"""Real media for the socket tests: FLV files encoded with PyAV, and publishing them over
RTMP with PyAV's bundled FFmpeg or the ``ffmpeg`` command line."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av


@dataclass(frozen=True)
class FlvTag:
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


def make_flv(
    path: Path,
    *,
    video: str | None = "libx264",
    audio: str | None = "aac",
    seconds: float = 2.0,
    fps: int = 30,
    size: tuple[int, int] = (320, 240),
    gop: int = 30,
) -> Path:
    """Encode a synthetic clip (moving gradient, a tone) into an FLV file with PyAV."""
    with av.open(str(path), "w", format="flv") as out:
        vstream = astream = None
        if video is not None:
            vstream = out.add_stream(video, rate=fps)
            vstream.width, vstream.height = size
            vstream.pix_fmt = "yuv420p"
            vstream.codec_context.gop_size = gop
            options = {"preset": "ultrafast"}
            if video == "libx265":
                options["x265-params"] = f"log-level=error:keyint={gop}:min-keyint={gop}"
            vstream.codec_context.options = options
        if audio is not None:
            astream = out.add_stream(audio, rate=48000)
            astream.layout = "stereo"
        frames = int(seconds * fps)
        if vstream is not None:
            width, height = size
            for i in range(frames):
                frame = av.VideoFrame(width, height, "yuv420p")
                for n, plane in enumerate(frame.planes):
                    row = bytes((x + i * 4 + n * 50) & 0xFF for x in range(plane.line_size))
                    plane.update(row * (plane.buffer_size // plane.line_size))
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode(None))
        if astream is not None:
            samples = 1024
            count = int(seconds * 48000 / samples)
            for i in range(count):
                frame = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
                for plane in frame.planes:
                    plane.update(bytes((i * 7 + k) & 0x3F for k in range(plane.buffer_size)))
                frame.sample_rate = 48000
                frame.pts = i * samples
                frame.time_base = Fraction(1, 48000)
                out.mux(astream.encode(frame))
            out.mux(astream.encode(None))
    return path


def remux_with_pyav(source: Path, url: str) -> None:
    """Remux ``source`` (stream copy) to ``url`` with PyAV's FLV muxer over RTMP."""
    with av.open(str(source)) as src, av.open(url, "w", format="flv") as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)


async def publish_with_pyav(source: Path, url: str) -> int:
    """Push ``source`` with PyAV from a child process; returns its exit code.

    PyAV holds the GIL while FFmpeg opens the RTMP connection, so a publisher in a thread
    of the process running the server would deadlock it.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.media", str(source), url
    )
    return await proc.wait()


async def publish_with_ffmpeg(source: Path, url: str, *extra: str) -> int:
    """Push ``source`` with the ``ffmpeg`` command line (``-c copy``); returns its exit code."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-i",
        str(source),
        *extra,
        "-c",
        "copy",
        "-f",
        "flv",
        url,
    )
    return await proc.wait()


if __name__ == "__main__":
    remux_with_pyav(Path(sys.argv[1]), sys.argv[2])
