"""Core parse throughput: how fast one core turns publisher bytes into media events.

Encodes a realistic clip with PyAV (1280x720 at 30 fps, H.264 at about 2.5 Mb/s with a
2 s GOP, AAC at 48 kHz), chunks it exactly as a publisher would (the core's client role at
the given chunk size), and feeds the server role those bytes in socket-sized reads,
draining every event. Only the sans-IO core is measured: no sockets, no event loop.

    python -m bench.parse_throughput                    # 128- and 4096-byte chunks
    python -m bench.parse_throughput --profile 4096     # where the time goes
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.media import make_benchmark_clip, read_flv_tags
from ingest.rtmp import ClientConnection, ConnectRequested, PublishRequested, ServerConnection
from ingest.rtmp.events import AUDIO, NEED_DATA, VIDEO, MediaReceived
from ingest.rtmp.server import ServerState

#: The publisher bitrate the targets are stated for (2.5 Mb/s), in bytes per second.
STREAM_BYTES_PER_SECOND = 2_500_000 / 8


def publishing_pair(chunk_size: int) -> tuple[ClientConnection, bytes]:
    """A client in the publishing state, and every byte it sent to get there."""
    client = ClientConnection(app="live", stream_name="bench", chunk_size=chunk_size)
    server = ServerConnection()
    sent = []
    while server.state is not ServerState.PUBLISHING:
        data = client.data_to_send()
        sent.append(data)
        if data:
            server.receive_data(data)
        while (event := server.next_event()) is not NEED_DATA:
            if isinstance(event, ConnectRequested):
                server.accept_connect()
            elif isinstance(event, PublishRequested):
                server.accept_publish()
        reply = server.data_to_send()
        if reply:
            client.receive_data(reply)
        while client.next_event() is not NEED_DATA:
            pass
    return client, b"".join(sent)


def wire_stream(tags_path: Path, chunk_size: int) -> tuple[bytes, bytes, int]:
    """(setup bytes, media bytes, media message count) for one publish of the clip."""
    client, setup = publishing_pair(chunk_size)
    client.data_to_send()
    count = 0
    for tag in read_flv_tags(tags_path):
        if tag.tag_type == VIDEO:
            client.send_video(tag.timestamp, tag.body)
        elif tag.tag_type == AUDIO:
            client.send_audio(tag.timestamp, tag.body)
        else:
            continue
        count += 1
    return setup, client.data_to_send(), count


def accepted_server(setup: bytes) -> ServerConnection:
    server = ServerConnection()
    server.receive_data(setup)
    while server.state is not ServerState.PUBLISHING:
        event = server.next_event()
        if isinstance(event, ConnectRequested):
            server.accept_connect()
        elif isinstance(event, PublishRequested):
            server.accept_publish()
        elif event is NEED_DATA:
            raise RuntimeError("setup bytes did not reach the publishing state")
    return server


def run(setup: bytes, media: bytes, messages: int, repeat: int, read_size: int) -> dict[str, Any]:
    reads = [media[i : i + read_size] for i in range(0, len(media), read_size)]
    server = accepted_server(setup)
    events = 0
    payload = 0
    started = time.perf_counter()
    for _ in range(repeat):
        for data in reads:
            server.receive_data(data)
            while (event := server.next_event()) is not NEED_DATA:
                events += 1
                if isinstance(event, MediaReceived):
                    payload += len(event.payload)
    elapsed = time.perf_counter() - started
    if events != messages * repeat or server.closed:
        raise RuntimeError(f"parsed {events} events, expected {messages * repeat}")
    wire = len(media) * repeat
    return {
        "wire_bytes": wire,
        "payload_bytes": payload,
        "messages": events,
        "seconds": round(elapsed, 4),
        "mb_per_s": round(wire / elapsed / 1e6, 1),
        "us_per_message": round(elapsed / events * 1e6, 2),
        "realtime_streams_per_core": int(wire / elapsed / STREAM_BYTES_PER_SECOND),
    }


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "python": platform.python_version(), "system": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chunk_sizes", nargs="*", type=int, default=[128, 4096])
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length")
    parser.add_argument("--repeat", type=int, default=30, help="times the clip is fed")
    parser.add_argument("--read-size", type=int, default=65536, help="bytes per socket read")
    parser.add_argument("--cpu", type=int, help="pin to this CPU")
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_benchmark_clip(Path(tmp) / "clip.flv", args.seconds)
        results: dict[str, Any] = {"machine": machine(), "clip_seconds": args.seconds, "runs": {}}
        for chunk_size in args.chunk_sizes:
            setup, media, count = wire_stream(clip, chunk_size)
            rate = len(media) / args.seconds * 8 / 1e6
            run(setup, media, count, 1, args.read_size)  # warm up
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
            result = run(setup, media, count, args.repeat, args.read_size)
            if args.profile:
                profiler.disable()
                pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(12)
            result["stream_mbit_per_s"] = round(rate, 2)
            results["runs"][str(chunk_size)] = result
            print(
                f"chunk {chunk_size:>5}: {result['mb_per_s']:>7.1f} MB/s  "
                f"{result['us_per_message']:>6.2f} us/message  "
                f"({result['realtime_streams_per_core']} real-time {rate:.2f} Mb/s streams "
                f"per core)"
            )
    print(json.dumps(results["machine"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
