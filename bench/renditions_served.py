"""What a live session's renditions cost in the real server, and where that cost lands.

``rtmp-ingest serve`` (one process, HLS on) receives one real-time publish of the
benchmark clip (720p30 H.264 + AAC, ``ffmpeg -re -c copy``) on a stream without profiles,
then on one with the 360p + 240p ladder. Over a steady window, /proc gives the CPU of the
server process itself (event loop, segmenter threads, HTTP: what ingest costs) and of its
transcoder process apart. The renditions should add nothing to the first and cost in the
second what ``bench.transcode`` measures for the engine; the ledger then says whether any
frame was dropped (``renditions[].dropped_frames``) and what was written.

    python -m bench.renditions_served --seconds 20 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat
from bench.media import make_benchmark_clip
from bench.parse_throughput import machine
from ingest.profiles import Profile
from sessions.streams import Streams
from storage import Store

LADDER = (Profile("360p", 640, 360, 800_000), Profile("240p", 426, 240, 400_000))
#: Seconds after the publish starts before the window opens (the transcoder process
#: starts with the first session that needs it).
SETTLE = 4.0


async def _streams(data: Path) -> dict[str, str]:
    """A stream without profiles and one with the ladder: {name: key}."""
    store = await Store.open(data / "rtmp-ingest.db")
    try:
        streams = Streams(store)
        _, plain = await streams.create("plain")
        _, ladder = await streams.create("ladder", profiles=LADDER)
    finally:
        await store.close()
    return {"plain": plain, "ladder": ladder}


async def _session(data: Path, name: str) -> dict[str, Any]:
    """The stream's session once it ended (its renditions finished, final counters)."""
    store = await Store.open(data / "rtmp-ingest.db")
    try:
        async with asyncio.timeout(120):
            while True:
                rows, _ = await store.list_sessions(limit=10)
                ended = [r for r in rows if r.name == name and r.status == "ended"]
                if ended:
                    break
                await asyncio.sleep(0.2)
    finally:
        await store.close()
    (row,) = ended
    return {
        "source_segments": row.source_segments,
        "transcoded_segments": row.transcoded_segments,
        "transcoded_bytes": row.transcoded_bytes,
        "renditions": row.renditions,
        "issues": [i["code"] for i in row.issues],
    }


def _start_server(tmp: Path, data: Path) -> tuple[subprocess.Popen[bytes], int]:
    config = tmp / "config.toml"
    config.write_text(
        '[rtmp]\nlisten = "127.0.0.1:0"\n[http]\nlisten = "127.0.0.1:0"\n'
        f'[storage]\ndata_dir = "{data}"\n[transcode]\nencoder = "libx264"\n'
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "ingest", "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=open(tmp / "server.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    assert server.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stdout.readline().decode()
        if match := re.search(r"RTMP on [\d.]+:(\d+)", line):
            return server, int(match.group(1))
        if not line and server.poll() is not None:
            break
    server.kill()
    raise RuntimeError(f"the server did not start: see {tmp / 'server.log'}")


def _window(
    server: subprocess.Popen[bytes], url: str, clip: Path, seconds: float
) -> dict[str, float]:
    """CPU % of the server process and of its children over the window of a publish."""
    publisher = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", str(clip),
         "-c", "copy", "-f", "flv", url],
    )  # fmt: skip
    try:
        time.sleep(SETTLE)
        own, everything, start = (
            procstat.cpu_seconds(server.pid),
            procstat.tree_cpu_seconds(server.pid),
            time.monotonic(),
        )
        time.sleep(seconds)
        wall = time.monotonic() - start
        own = procstat.cpu_seconds(server.pid) - own
        everything = procstat.tree_cpu_seconds(server.pid) - everything
        if publisher.poll() is not None:
            raise RuntimeError("the clip ended inside the window: use a longer clip")
        if publisher.wait(seconds + 60) != 0:
            raise RuntimeError("the publisher failed")
    finally:
        if publisher.poll() is None:
            publisher.kill()
    return {"server": 100 * own / wall, "transcoder": 100 * (everything - own) / wall}


def run_once(tmp: Path, clip: Path, seconds: float) -> dict[str, Any]:
    data = tmp / "data"
    keys = asyncio.run(_streams(data))
    server, port = _start_server(tmp, data)
    try:
        result: dict[str, Any] = {}
        for name in ("plain", "ladder"):
            cpu = _window(server, f"rtmp://127.0.0.1:{port}/live/{keys[name]}", clip, seconds)
            result[name] = {**cpu, **asyncio.run(_session(data, name))}
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="renditions-served-") as root:
        clip = make_benchmark_clip(Path(root) / "clip.flv", args.seconds + SETTLE + 3)
        for index in range(args.runs):
            tmp = Path(root) / f"run{index}"
            tmp.mkdir()
            runs.append(run_once(tmp, clip, args.seconds))
            print(json.dumps({"run": index, **runs[-1]}), flush=True)

    def median(name: str, key: str) -> float:
        return round(float(statistics.median(r[name][key] for r in runs)), 2)

    summary = {
        "machine": machine(),
        "load_average": os.getloadavg(),
        "server_cpu_percent": {n: median(n, "server") for n in ("plain", "ladder")},
        "transcoder_cpu_percent": {n: median(n, "transcoder") for n in ("plain", "ladder")},
        "dropped_frames": [
            sum(p["dropped_frames"] for p in r["ladder"]["renditions"]) for r in runs
        ],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
