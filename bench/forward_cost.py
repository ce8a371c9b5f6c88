"""CPU per forwarded target: rtmp-ingest's sessions forwarding to their stream's targets,
beside nginx-rtmp's ``push``, in one run.

Each server receives one real-time publish (the benchmark clip, ~2.75 Mb/s, pushed by
``ffmpeg -re -c copy``) and forwards it to N targets, all on one sink (nginx-rtmp, each
target a stream name of its own). Ours is the real server (``rtmp-ingest serve``, HLS
off) with one stream whose N enabled targets are in its store, so the publish goes
through a session and its forwarding attachment exactly as in production; nginx's is
``push rtmp://.../live/tN`` lines. Each server runs with 0 targets, then with N, as its
own process; its CPU (every thread, from /proc) is read over a steady window, and the
cost per target is (CPU with N - CPU with 0) / N. The publisher and the sink are not
counted.

    python -m bench.forward_cost --targets 10 --seconds 10 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import nginx_peer, procstat
from bench.media import make_benchmark_clip
from bench.parse_throughput import machine

#: Seconds after the publish starts before the window opens.
SETTLE = 3.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_accepting(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen within 30 s") from None
            time.sleep(0.05)


@contextmanager
def _process(cmd: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            preexec_fn=procstat.child_setup(None),
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _nginx(prefix: Path, port: int, push: Sequence[str]) -> list[str]:
    found = nginx_peer.find_nginx()
    prefix.mkdir(parents=True, exist_ok=True)
    conf = nginx_peer.write_config(
        prefix, found.module, port, hls=False, root=os.geteuid() == 0, push=push
    )
    return nginx_peer.command(found, prefix, conf)


def _measure(
    server: subprocess.Popen[bytes],
    port: int,
    clip: Path,
    seconds: float,
    log: Path,
    key: str = "source",
) -> float:
    """CPU % of ``server`` over ``seconds`` of a real-time publish into it."""
    url = f"rtmp://127.0.0.1:{port}/live/{key}"
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", str(clip),
           "-c", "copy", "-f", "flv", url]  # fmt: skip
    with _process(cmd, log) as publisher:
        time.sleep(SETTLE)
        if publisher.poll() is not None:
            raise RuntimeError(f"the publisher exited ({publisher.returncode}): see {log}")
        start_cpu, start = procstat.tree_cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds)
        cpu, wall = procstat.tree_cpu_seconds(server.pid), time.monotonic()
        if publisher.poll() is not None:
            raise RuntimeError("the clip ended inside the window: use a longer clip")
    return 100.0 * (cpu - start_cpu) / (wall - start)


async def _prepare(data: Path, urls: Sequence[str]) -> str:
    """A store in ``data`` with one stream whose enabled targets are ``urls``; its key."""
    from sessions.streams import Streams
    from sessions.targets import Targets
    from storage import Store

    store = await Store.open(data / "rtmp-ingest.db")
    try:
        stream, key = await Streams(store).create("source")
        targets = Targets(store)
        for i, url in enumerate(urls):
            await targets.create(stream.id, f"target {i}", url)
    finally:
        await store.close()
    return key


async def _check_forwarded(data: Path, count: int) -> None:
    """The session's ledger says every target was live the whole time and skipped
    nothing (else the figure measures something else)."""
    from storage import Store

    store = await Store.open(data / "rtmp-ingest.db")
    try:
        sessions, _ = await store.list_sessions(limit=1)
    finally:
        await store.close()
    (session,) = sessions
    entries = session.multistream
    bad = [e for e in entries if e["reconnects"] or e["skipped_bytes"] or e["last_error"]]
    if len(entries) != count or bad:
        raise RuntimeError(f"forwarding was not clean: {entries}")


def _ours(tmp: Path, port: int, urls: Sequence[str]) -> tuple[list[str], str]:
    """The command of a real server on ``port`` forwarding to ``urls``, and the key."""
    data = tmp / "data"
    data.mkdir(parents=True)
    key = asyncio.run(_prepare(data, urls))
    config = tmp / "config.toml"
    config.write_text(
        f'[rtmp]\nlisten = "127.0.0.1:{port}"\n'
        f'[http]\nlisten = "127.0.0.1:{_free_port()}"\n'
        f'[hls]\nenabled = false\n[storage]\ndata_dir = "{data}"\n'
    )
    return [sys.executable, "-m", "ingest", "serve", "--config", str(config)], key


def run_once(
    tmp: Path, clip: Path, sink_port: int, targets: int, seconds: float, run: int = 0
) -> dict[str, dict[int, float]]:
    """{server: {targets: cpu %}} for 0 and ``targets`` targets."""
    results: dict[str, dict[int, float]] = {"rtmp-ingest": {}, "nginx-rtmp": {}}
    for count in (0, targets):
        port = _free_port()
        urls = [f"rtmp://127.0.0.1:{sink_port}/live/ours{run}-{count}-{i}" for i in range(count)]
        cmd, key = _ours(tmp / f"ours-{run}-{count}", port, urls)
        with _process(cmd, tmp / f"ours-{run}-{count}.log") as proc:
            _wait_accepting(port, proc, "rtmp-ingest")
            results["rtmp-ingest"][count] = _measure(
                proc, port, clip, seconds, tmp / f"pub-ours-{run}-{count}.log", key
            )
        asyncio.run(_check_forwarded(tmp / f"ours-{run}-{count}" / "data", count))
        port = _free_port()
        push = [f"rtmp://127.0.0.1:{sink_port}/live/nginx{run}-{count}-{i}" for i in range(count)]
        cmd = _nginx(tmp / f"nginx-{run}-{count}", port, push)
        with _process(cmd, tmp / f"nginx-{run}-{count}.log") as proc:
            _wait_accepting(port, proc, "nginx")
            results["nginx-rtmp"][count] = _measure(
                proc, port, clip, seconds, tmp / f"pub-nginx-{run}-{count}.log"
            )
    return results


async def _feed(clip: Path, sink_port: int, counts: Sequence[int], seconds: float) -> None:
    """The loop's cost of feeding: the recorded clip's messages, in real time and in the
    batches a paced read makes (every 50 ms), into a Multistream with N live targets
    (on the sink); the CPU time (this thread's) spent in ``media()`` and in the targets'
    writes, per message."""
    from bench.media import read_flv_tags
    from ingest.multistream import ForwardSettings, Multistream, Target
    from ingest.multistream import target as target_module
    from ingest.rtmp.events import media_received
    from ingest.rtmp.url import parse_rtmp_url

    tags = [t for t in read_flv_tags(clip) if t.tag_type in (8, 9)]
    spent = [0.0]
    pump = target_module.TargetLink.pump

    def timed_pump(self: target_module.TargetLink) -> None:
        began = time.thread_time()
        pump(self)
        spent[0] += time.thread_time() - began

    target_module.TargetLink.pump = timed_pump  # type: ignore[method-assign]
    for count in counts:
        targets = [
            Target(
                str(i), str(i), parse_rtmp_url(f"rtmp://127.0.0.1:{sink_port}/live/f{count}-{i}")
            )
            for i in range(count)
        ]
        multistream = Multistream(targets, ForwardSettings())
        multistream.start()
        await asyncio.sleep(1.0)  # connected (the first tags are queued meanwhile anyway)
        spent[0] = 0.0
        fed = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = tags[0].timestamp
        index = 0
        while index < len(tags) and (tags[index].timestamp - first) / 1000 < seconds:
            due = start + (tags[index].timestamp - first) / 1000
            await asyncio.sleep(max(0.0, due - loop.time()) + 0.05)
            began = time.thread_time()
            now = loop.time() - start
            while index < len(tags) and (tags[index].timestamp - first) / 1000 <= now:
                tag = tags[index]
                multistream.media(media_received(1, tag.tag_type, tag.timestamp, tag.body))
                index += 1
                fed += 1
            spent[0] += time.thread_time() - began
        await asyncio.sleep(0.2)
        stats = await multistream.close()
        skipped = sum(s.skipped_bytes for s in stats)
        print(
            f"  {count:3} targets: {1e6 * spent[0] / fed:6.1f} µs of loop CPU per message "
            f"({fed} messages, skipped bytes {skipped})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "feed":
        with tempfile.TemporaryDirectory(prefix="forward-feed-") as folder:
            tmp = Path(folder)
            clip = make_benchmark_clip(tmp / "clip.flv", 12)
            sink_port = _free_port()
            with _process(_nginx(tmp / "sink", sink_port, ()), tmp / "sink.log") as sink:
                _wait_accepting(sink_port, sink, "the sink nginx")
                print("Feeding cost, real time, 50 ms batches (the clip's messages)")
                asyncio.run(_feed(clip, sink_port, [0, 1, 10, 40], 10.0))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="the window")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--keep", type=Path, help="a folder to keep the logs in")
    options = parser.parse_args(args)
    with tempfile.TemporaryDirectory(prefix="forward-cost-") as folder:
        tmp = options.keep or Path(folder)
        tmp.mkdir(parents=True, exist_ok=True)
        clip = make_benchmark_clip(tmp / "clip.flv", SETTLE + options.seconds + 4)
        sink_port = _free_port()
        runs: list[dict[str, dict[int, float]]] = []
        with _process(_nginx(tmp / "sink", sink_port, ()), tmp / "sink.log") as sink:
            _wait_accepting(sink_port, sink, "the sink nginx")
            for run in range(options.runs):
                runs.append(run_once(tmp, clip, sink_port, options.targets, options.seconds, run))
                print(f"run {run + 1}: {json.dumps(runs[-1])}", file=sys.stderr)
    n = options.targets
    report: dict[str, Any] = {"machine": machine(), "targets": n, "runs": runs}
    print(f"CPU per forwarded target at ~2.75 Mb/s, {n} targets, {options.runs} runs")
    for server in ("rtmp-ingest", "nginx-rtmp"):
        per = [(r[server][n] - r[server][0]) / n for r in runs]
        base = [r[server][0] for r in runs]
        report[server] = {"per_target_percent": per, "base_percent": base}
        print(
            f"  {server:12} {statistics.median(per):6.3f} % per target "
            f"(runs {', '.join(f'{p:.3f}' for p in per)}; "
            f"receiving alone {statistics.median(base):.2f} %)"
        )
    if options.json:
        options.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
