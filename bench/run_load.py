"""Ingest load: N real-time publishers against ``rtmp-ingest serve``, and optionally
against nginx-rtmp under the same load in the same run.

Each server runs as its own process pinned to one CPU (0 by default); the load generator
(``bench.publisher``, 720p30 H.264 at ~2.5 Mb/s plus AAC) runs pinned to another (1).
Over a steady window (after the ramp and a settling time, ending before the publishers
stop) it measures the server's CPU (every thread, from /proc), its resident memory,
publish-accept latency, dropped publishers and the generator's own CPU.

    python -m bench.run_load --streams 20 --seconds 60 --peer nginx --hls on --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from bench import nginx_peer, procstat
from bench.media import make_benchmark_clip
from bench.parse_throughput import machine
from ingest.config import ENV_PREFIX
from sessions.streams import Streams
from storage import Store

CLIP_SECONDS = 20.0
#: Seconds the publisher process takes to start (imports, reading the clip) before its
#: first connection; the window starts after it, the ramp and the settling time.
STARTUP = 1.5
#: Seconds after the ramp before the window starts, and before the end that it stops.
SETTLE = 5.0
TAIL = 2.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class Interrupted(Exception):
    """SIGTERM (or SIGHUP) arrived: stop measuring, clean up."""


@dataclass
class Result:
    """One server's figures over the window."""

    server: str
    window_seconds: float = 0.0
    cpu_percent: float = 0.0
    cpu_percent_max_1s: float = 0.0
    peak_rss: int = 0
    rss_end: int = 0
    pss_end: int = 0
    accept_p50_ms: float | None = None
    accept_p99_ms: float | None = None
    streams_accepted: int = 0
    errors: list[str] = field(default_factory=list)
    disconnects: int = 0
    dropped: int = 0
    bytes_sent: int = 0
    generator_cpu_percent: float = 0.0
    generator_cpu_seconds: float = 0.0
    generator_wall_seconds: float = 0.0
    live_sessions_start: int | None = None
    live_sessions_end: int | None = None
    loop_lag_ms: dict[str, float] | None = None
    segment_availability_ms: dict[str, float] | None = None
    server_alive_at_end: bool = True
    #: HLS segment files on disk at the window's end (a check that HLS was really on).
    hls_files: int = 0

    def per_stream(self, value: float, streams: int) -> float:
        return value / streams if streams else 0.0


# --- processes ----------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """This environment without RTMP_INGEST_* overrides (the config file is the truth)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def _start(
    cmd: list[str], cpu: set[int] | None, log: IO[bytes], **kwargs: Any
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        preexec_fn=procstat.child_setup(cpu),
        start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        stderr=log,
        env=_clean_env(),
        **kwargs,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, SIGKILL if it will not go."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def _running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        _stop(proc)


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {READY_TIMEOUT:.0f} s")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --- the two servers ----------------------------------------------------------------------


@dataclass
class Target:
    """A running server under test."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    keys: list[str]
    #: Where its HLS segments go.
    media_dir: Path | None = None
    #: Returns /api/status (ours only).
    status: Callable[[], dict[str, Any]] | None = None


async def _create_keys(db: Path, streams: int) -> list[str]:
    store = await Store.open(db)
    try:
        api = Streams(store)
        return [(await api.create(f"load-{i}"))[1] for i in range(streams)]
    finally:
        await store.close()


@contextmanager
def ours(
    tmp: Path,
    streams: int,
    hls: bool,
    cpu: set[int] | None,
    processes: int = 1,
    settings: Sequence[tuple[str, str, str]] = (),
) -> Iterator[Target]:
    data = tmp / "data"
    data.mkdir()
    config = tmp / "config.toml"
    sections: dict[str, dict[str, str]] = {
        "rtmp": {"listen": '"127.0.0.1:0"', "processes": str(processes)},
        "http": {"listen": '"127.0.0.1:0"'},
        "storage": {"data_dir": json.dumps(str(data))},
        "hls": {"enabled": "true" if hls else "false"},
    }
    for section, key, value in settings:
        sections.setdefault(section, {})[key] = value
    config.write_text(
        "".join(
            f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())
            for section, keys in sections.items()
        )
    )
    keys = asyncio.run(_create_keys(data / "rtmp-ingest.db", streams))
    stdout = tmp / "stdout.log"
    cmd = [sys.executable, "-m", "ingest", "serve", "--config", str(config)]
    with (
        open(stdout, "wb") as out,
        open(tmp / "stderr.log", "wb") as err,
        _running(_start(cmd, cpu, err, stdout=out, stdin=subprocess.DEVNULL)) as proc,
    ):
        ready: list[str] = []

        def started() -> bool:
            for line in stdout.read_text(errors="replace").splitlines():
                if line.startswith("RTMP on "):
                    ready.append(line)
                    return True
            return False

        _wait_for(started, proc, "rtmp-ingest serve")
        # "RTMP on 127.0.0.1:PORT; HTTP API on 127.0.0.1:PORT"
        rtmp_part, _, http_part = ready[0].partition(";")
        rtmp_addr = rtmp_part.removeprefix("RTMP on ").split()[0]
        http_addr = http_part.strip().removeprefix("HTTP API on ").split()[0]
        token = (data / "admin_token").read_text().strip()

        def status() -> dict[str, Any]:
            request = urllib.request.Request(
                f"http://{http_addr}/api/status", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                body: dict[str, Any] = json.load(response)
                return body

        yield Target("rtmp-ingest", proc, f"rtmp://{rtmp_addr}/live", keys, data, status)


@contextmanager
def nginx(
    tmp: Path, nginx_bin: nginx_peer.Nginx, keys: list[str], hls: bool, cpu: set[int] | None
) -> Iterator[Target]:
    port = _free_port()
    conf = nginx_peer.write_config(tmp, nginx_bin.module, port, hls=hls, root=os.geteuid() == 0)
    cmd = nginx_peer.command(nginx_bin, tmp, conf)
    with (
        open(tmp / "stderr.log", "wb") as err,
        _running(
            _start(cmd, cpu, err, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        ) as proc,
    ):
        try:
            _wait_for(lambda: _accepting(port), proc, "nginx")
        except RuntimeError:
            log = tmp / "error.log"
            if log.exists():
                sys.stderr.write(log.read_text(errors="replace")[-2000:])
            raise
        yield Target("nginx-rtmp", proc, f"rtmp://127.0.0.1:{port}/live", keys, tmp / "hls")


# --- measuring ----------------------------------------------------------------------------


def _percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def _sleep_until(deadline: float, proc: subprocess.Popen[bytes]) -> None:
    while (left := deadline - time.monotonic()) > 0:
        if proc.poll() is not None:
            return
        time.sleep(min(left, 0.25))


def measure(
    target: Target,
    clip: Path,
    *,
    seconds: float,
    ramp: float,
    chunk_size: int,
    cpu: set[int] | None,
    log: IO[bytes],
) -> Result:
    result = Result(target.name)
    server = target.proc.pid
    cmd = [
        sys.executable, "-m", "bench.publisher", "--url", target.url,
        "--seconds", str(seconds), "--ramp", str(ramp), "--chunk-size", str(chunk_size),
        str(clip),
    ]  # fmt: skip
    publisher = _start(cmd, cpu, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with _running(publisher):
        assert publisher.stdin is not None and publisher.stdout is not None
        publisher.stdin.write("".join(f"{k}\n" for k in target.keys).encode())
        publisher.stdin.close()
        t0 = time.monotonic()
        start_at = t0 + STARTUP + ramp + SETTLE
        end_at = t0 + seconds - TAIL
        _sleep_until(start_at, publisher)
        if target.status is not None:
            result.live_sessions_start = target.status()["live_sessions"]
        began = time.monotonic()
        cpu0, gen0 = procstat.tree_cpu_seconds(server), procstat.cpu_seconds(publisher.pid)
        last_t, last_cpu = began, cpu0
        while time.monotonic() < end_at and publisher.poll() is None:
            _sleep_until(min(end_at, last_t + 1.0), publisher)
            now, used = time.monotonic(), procstat.tree_cpu_seconds(server)
            if now - last_t >= 0.5:
                share = (used - last_cpu) / (now - last_t) * 100
                result.cpu_percent_max_1s = max(result.cpu_percent_max_1s, share)
            last_t, last_cpu = now, used
        ended = time.monotonic()
        cpu1 = procstat.tree_cpu_seconds(server)
        gen1 = procstat.cpu_seconds(publisher.pid) if publisher.poll() is None else gen0
        mem = procstat.tree_memory(server)
        result.window_seconds = ended - began
        result.cpu_percent = (cpu1 - cpu0) / result.window_seconds * 100
        result.generator_cpu_percent = (gen1 - gen0) / result.window_seconds * 100
        result.peak_rss, result.rss_end, result.pss_end = mem.peak_rss, mem.rss, mem.pss
        if target.media_dir is not None and target.media_dir.exists():
            names = (p.name for p in target.media_dir.rglob("*") if p.is_file())
            result.hls_files = sum(1 for n in names if n.endswith((".ts", ".m4s")))
        if target.status is not None:
            body = target.status()
            result.live_sessions_end = body["live_sessions"]
            lag = body.get("loop_lag_ms")
            if isinstance(lag, dict):
                result.loop_lag_ms = {k: float(v) for k, v in lag.items()}
            available = body.get("segment_availability_ms")
            if isinstance(available, dict):
                result.segment_availability_ms = {k: float(v) for k, v in available.items()}
        out = publisher.stdout.read()  # its JSON, once every stream has ended
        publisher.wait()
    result.server_alive_at_end = target.proc.poll() is None
    report = json.loads(out)
    streams: list[dict[str, Any]] = report["streams"]
    latencies = [s["accept_latency"] for s in streams if s["accept_latency"] is not None]
    p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
    result.accept_p50_ms = None if p50 is None else p50 * 1000
    result.accept_p99_ms = None if p99 is None else p99 * 1000
    result.streams_accepted = len(latencies)
    result.errors = [s["error"] for s in streams if s["error"]]
    result.disconnects = sum(s["disconnects"] for s in streams)
    result.dropped = sum(1 for s in streams if s["error"] or s["disconnects"])
    result.bytes_sent = sum(s["bytes_sent"] for s in streams)
    result.generator_cpu_seconds = report["cpu_seconds"]
    result.generator_wall_seconds = report["wall_seconds"]
    return result


# --- reporting ----------------------------------------------------------------------------


def _mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def table(results: list[Result], streams: int) -> str:
    rows: list[tuple[str, list[str], str]] = []

    def ratio(get: Callable[[Result], float]) -> str:
        if len(results) != 2 or not get(results[1]):
            return ""
        return f"{get(results[0]) / get(results[1]):.2f}x"

    def add(label: str, get: Callable[[Result], str], ratio_of: str = "") -> None:
        rows.append((label, [get(r) for r in results], ratio_of))

    add(
        "server CPU, % of one core",
        lambda r: f"{r.cpu_percent:.1f}%",
        ratio(lambda r: r.cpu_percent),
    )
    add(
        "server CPU per stream",
        lambda r: f"{r.per_stream(r.cpu_percent, streams):.2f}%",
        ratio(lambda r: r.cpu_percent),
    )
    add("server CPU, busiest 1 s", lambda r: f"{r.cpu_percent_max_1s:.1f}%")
    add("peak RSS (VmHWM)", lambda r: _mib(r.peak_rss), ratio(lambda r: r.peak_rss))
    add("RSS at window end", lambda r: _mib(r.rss_end), ratio(lambda r: r.rss_end))
    add("PSS at window end", lambda r: _mib(r.pss_end), ratio(lambda r: r.pss_end))
    add("publish accept p50", lambda r: _ms(r.accept_p50_ms))
    add("publish accept p99", lambda r: _ms(r.accept_p99_ms))
    add("dropped publishers", lambda r: f"{r.dropped} of {streams}")
    add("live sessions (start/end)", _live)
    add("loop lag p50/p99/max", lambda r: _percentiles(r.loop_lag_ms))
    add("segment availability p50/p99/max", lambda r: _percentiles(r.segment_availability_ms))
    add(
        "generator CPU per stream",
        lambda r: f"{r.per_stream(r.generator_cpu_percent, streams):.2f}%",
    )
    add("HLS segment files on disk", lambda r: str(r.hls_files))
    add("window", lambda r: f"{r.window_seconds:.1f} s")
    headers = ["", *(r.server for r in results)] + (["ours/nginx"] if len(results) == 2 else [])
    lines = [
        [label, *values] + ([extra] if len(results) == 2 else []) for label, values, extra in rows
    ]
    widths = [max(len(str(row[i])) for row in [headers, *lines]) for i in range(len(headers))]
    text = []
    for row in [headers, *lines]:
        text.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in text)


def _live(r: Result) -> str:
    if r.live_sessions_start is None:
        return "-"
    return f"{r.live_sessions_start}/{r.live_sessions_end}"


def _percentiles(values: dict[str, float] | None) -> str:
    if values is None:
        return "-"
    return f"{values['p50']:.1f}/{values['p99']:.1f}/{values['max']:.1f} ms"


# --- main ---------------------------------------------------------------------------------


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    hls = args.hls == "on"
    nginx_bin = nginx_peer.find_nginx(args.nginx) if args.peer == "nginx" else None
    if args.seconds <= STARTUP + args.ramp + SETTLE + TAIL + 5:
        raise SystemExit(
            f"--seconds must exceed {STARTUP + args.ramp + SETTLE + TAIL + 5:.1f} "
            "(start-up, ramp, settling and tail leave no window otherwise)"
        )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="run-load-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"encoding the clip ({CLIP_SECONDS:.0f} s, 1280x720 30 fps)...", file=sys.stderr)
        clip = make_benchmark_clip(tmp / "clip.flv", CLIP_SECONDS)
        if args.client_cpu:
            os.sched_setaffinity(0, args.client_cpu)  # keep the server's CPUs to itself
        common: dict[str, Any] = {
            "seconds": args.seconds,
            "ramp": args.ramp,
            "chunk_size": args.chunk_size,
            "cpu": args.client_cpu,
        }
        (tmp / "ours").mkdir()
        with open(tmp / "publisher-ours.log", "wb") as log:
            print(f"rtmp-ingest: {args.streams} streams, {args.seconds:.0f} s...", file=sys.stderr)
            with ours(
                tmp / "ours", args.streams, hls, args.server_cpu, args.processes, args.set
            ) as target:
                results.append(measure(target, clip, log=log, **common))
                keys = target.keys
            _show_log(tmp / "publisher-ours.log")
        if nginx_bin is not None:
            (tmp / "nginx").mkdir()
            with open(tmp / "publisher-nginx.log", "wb") as log:
                print(
                    f"nginx-rtmp: {args.streams} streams, {args.seconds:.0f} s...", file=sys.stderr
                )
                with nginx(tmp / "nginx", nginx_bin, keys, hls, args.server_cpu) as target:
                    results.append(measure(target, clip, log=log, **common))
                _show_log(tmp / "publisher-nginx.log")
    return {
        "command": command,
        "machine": machine(),
        "streams": args.streams,
        "seconds": args.seconds,
        "ramp": args.ramp,
        "hls": hls,
        "chunk_size": args.chunk_size,
        "server_cpu": sorted(args.server_cpu),
        "client_cpu": sorted(args.client_cpu),
        "processes": args.processes,
        "settings": [f"{s}.{k}={v}" for s, k, v in args.set],
        "clip": {"seconds": CLIP_SECONDS, "size": "1280x720", "fps": 30, "bitrate": 2_400_000},
        "results": [
            {
                **vars(r),
                "cpu_percent_per_stream": r.per_stream(r.cpu_percent, args.streams),
                "generator_cpu_percent_per_stream": r.per_stream(
                    r.generator_cpu_percent, args.streams
                ),
            }
            for r in results
        ],
        "table": table(results, args.streams),
    }


def _show_log(path: Path) -> None:
    text = path.read_text(errors="replace").strip()
    if text:
        print(f"{path.name}:\n{text[-2000:]}", file=sys.stderr)


def _cpus(text: str) -> set[int]:
    try:
        cpus = {int(part) for part in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CPUs like 0 or 0,1, got {text!r}") from None
    return cpus


def _setting(text: str) -> tuple[str, str, str]:
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not (sep and dot and section and key and value.strip()):
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE, got {text!r}")
    return section, key.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="each publisher's run")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds to start all streams")
    parser.add_argument("--peer", choices=["none", "nginx"], default="none")
    parser.add_argument("--hls", choices=["on", "off"], default="on")
    parser.add_argument("--chunk-size", type=int, default=4096, help="publishers' chunk size")
    parser.add_argument(
        "--server-cpu", type=_cpus, default={0}, help="CPUs the server is pinned to, e.g. 0 or 0,1"
    )
    parser.add_argument(
        "--client-cpu", type=_cpus, default={1}, help="CPUs the publishers are pinned to"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="our server's [rtmp] processes (workers)"
    )
    parser.add_argument(
        "--set",
        type=_setting,
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="one more setting of our server's config, as TOML (e.g. hls.workers=2); repeatable",
    )
    parser.add_argument("--nginx", help="the nginx binary (default: nginx on PATH)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "bench.run_load", *raw])
    if args.peer == "nginx":
        try:
            nginx_peer.find_nginx(args.nginx)
        except nginx_peer.NginxMissing as exc:
            print(f"run_load: {exc}", file=sys.stderr)
            return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    try:
        report = run(args, command)
    except (KeyboardInterrupt, Interrupted):
        print("run_load: interrupted; servers stopped", file=sys.stderr)
        return 130
    print(report["table"])
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(not r["dropped"] for r in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
