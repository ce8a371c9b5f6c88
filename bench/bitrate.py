"""One publisher at a high bitrate against ``rtmp-ingest serve``: what the server takes in,
and how far its reading trails real time.

    python -m bench.bitrate --mbps 80 --seconds 10 --read-interval 0.05 --read-interval 0

A 1920x1080 30 fps clip (noise, so that the encoder spends its whole bitrate; 5 s, looped)
is played at the speed that puts ``--mbps`` on the wire, by ``bench.publisher`` with
probes, once per ``--read-interval``, each against a fresh server (pinned to
``--server-cpu``; the publisher runs in this process, pinned to ``--client-cpu``).
``--loop asyncio`` runs the server on asyncio's own event loop instead of uvloop.

Prints, for each run, the Mb/s offered (the clip's bitrate varies: its first seconds
carry more) and achieved (what the server took in, from the first message's due time to
the answer of the ping after the last) and the lag behind real time at the end and at
most (see ``bench.publisher``), and the server's CPU seconds over the publish (HLS
segmenting included with ``--hls on``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import procstat, publisher
from bench.media import make_flv, media_tags
from bench.parse_throughput import machine
from bench.run_load import _cpus, ours

CLIP_SECONDS = 5.0
CLIP_SIZE = (1920, 1080)
CLIP_FPS = 30


def clip_mbps(clip: Path) -> float:
    """The clip's media bitrate as the publisher loops it (tag bodies per second)."""
    tags = media_tags(clip)
    span = (tags[-1].timestamp - tags[0].timestamp + 33) / 1000
    return sum(len(t.body) for t in tags) * 8 / span / 1e6


def _without_uvloop(tmp: Path) -> None:
    """Make ``import uvloop`` fail in the servers started from now on (asyncio's loop)."""
    shadow = tmp / "no-uvloop"
    shadow.mkdir()
    (shadow / "uvloop.py").write_text('raise ImportError("uvloop is hidden by bench.bitrate")\n')
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(shadow), os.environ.get("PYTHONPATH", "")) if p
    )


def run_one(
    tmp: Path, clip: Path, speed: float, read_interval: float, args: argparse.Namespace
) -> dict[str, Any]:
    settings = [("rtmp", "read_interval", repr(read_interval))]
    hls = args.hls == "on"
    with ours(tmp, 1, hls, args.server_cpu, settings=settings) as target:
        cpu = procstat.tree_cpu_seconds(target.proc.pid)
        (result,) = asyncio.run(
            publisher.run(target.url, target.keys, clip, args.seconds, 0, speed=speed, probe=True)
        )
        cpu = procstat.tree_cpu_seconds(target.proc.pid) - cpu
    return {"read_interval": read_interval, "server_cpu_seconds": round(cpu, 3), **vars(result)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mbps", type=float, default=80.0, help="target bitrate on the wire")
    parser.add_argument("--seconds", type=float, default=10.0, help="the publisher's run")
    parser.add_argument(
        "--read-interval",
        type=float,
        action="append",
        help="the server's [rtmp] read_interval; repeatable (default: 0.05 and 0)",
    )
    parser.add_argument("--hls", choices=["on", "off"], default="on")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--server-cpu", type=_cpus, default={0}, help="CPUs for the server")
    parser.add_argument("--client-cpu", type=_cpus, default={1}, help="CPUs for the publisher")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    intervals: list[float] = args.read_interval or [0.05, 0.0]
    raw = sys.argv[1:] if argv is None else argv
    report: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "bench.bitrate", *raw]),
        "machine": machine(),
        "loop": args.loop,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="bitrate-") as tmp_name:
        tmp = Path(tmp_name)
        if args.loop == "asyncio":
            _without_uvloop(tmp)
        print(f"encoding the clip ({CLIP_SECONDS:.0f} s, 1920x1080 noise)...", file=sys.stderr)
        clip = make_flv(
            tmp / "clip.flv",
            size=CLIP_SIZE,
            fps=CLIP_FPS,
            gop=2 * CLIP_FPS,
            seconds=CLIP_SECONDS,
            bitrate=int(args.mbps * 1e6),
        )
        speed = args.mbps / clip_mbps(clip)
        report["clip_mbps"] = round(clip_mbps(clip), 2)
        report["speed"] = round(speed, 4)
        if args.client_cpu:
            os.sched_setaffinity(0, args.client_cpu)
        for n, interval in enumerate(intervals):
            print(f"read_interval = {interval:g}: {args.seconds:g} s...", file=sys.stderr)
            (tmp / f"run-{n}").mkdir()
            report["runs"].append(run_one(tmp / f"run-{n}", clip, speed, interval, args))
    for run in report["runs"]:
        achieved, lag_end, lag_max = run["achieved_mbps"], run["lag_end"], run["lag_max"]
        offered = run["offered_mbps"]
        print(
            f"read_interval {run['read_interval']:g}: "
            + (
                f"offered {offered:.1f} Mb/s, achieved {achieved:.1f} Mb/s, "
                f"lag at the end {lag_end:.3f} s, at most {lag_max:.3f} s; "
                f"server CPU {run['server_cpu_seconds']:.2f} s"
                if None not in (offered, achieved, lag_end, lag_max)
                else f"no answer to the last probe ({run['error']})"
            )
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r["error"] is None for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
