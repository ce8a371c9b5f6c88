"""Publishing real media over RTMP with PyAV's bundled FFmpeg or the ``ffmpeg`` command line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import av

from bench.media import FlvTag, make_flv, read_flv_tags

__all__ = [
    "FlvTag",
    "make_flv",
    "publish_with_ffmpeg",
    "publish_with_pyav",
    "read_flv_tags",
    "start_ffmpeg",
]


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


async def start_ffmpeg(
    source: Path, url: str, *, realtime: bool = False, quiet: bool = False
) -> asyncio.subprocess.Process:
    """Start pushing ``source`` with the ``ffmpeg`` command line (``-c copy``), at the
    clip's own pace with ``realtime``; ``quiet`` hides even its error messages."""
    pace = ("-re",) if realtime else ()
    level = "quiet" if quiet else "error"
    return await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", level, "-nostdin", *pace,
        "-i", str(source), "-c", "copy", "-f", "flv", url,
    )  # fmt: skip


async def publish_with_ffmpeg(source: Path, url: str, *, realtime: bool = False) -> int:
    """Push ``source`` with the ``ffmpeg`` command line; returns its exit code."""
    return await (await start_ffmpeg(source, url, realtime=realtime)).wait()


if __name__ == "__main__":
    remux_with_pyav(Path(sys.argv[1]), sys.argv[2])
