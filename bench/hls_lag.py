"""Event-loop lag while N streams are ingested and segmented into HLS.

Runs the real server (store, sessions, RTMP listener, HLS segmenters in their thread
pool, HTTP API) in this process with a ticker that measures how late the event loop
wakes it, while ``bench.publisher`` pushes N real-time 720p30 H.264+AAC streams from
another process.

    python -m bench.hls_lag --streams 20 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.media import make_benchmark_clip
from bench.parse_throughput import machine
from ingest.config import Config, HlsConfig, HttpConfig, RtmpConfig, StorageConfig
from ingest.server.app import IngestServer
from storage import Store

TICK = 0.010


async def measure(streams: int, seconds: float, workers: int, data: Path) -> dict[str, Any]:
    config = Config(
        rtmp=RtmpConfig(listen="127.0.0.1:0"),
        http=HttpConfig(listen="127.0.0.1:0"),
        hls=HlsConfig(workers=workers),
        storage=StorageConfig(data_dir=str(data)),
    )
    clip = make_benchmark_clip(data / "clip.flv", 10)
    store = await Store.open(config.storage.database_path)
    server = IngestServer(config, store)
    await server.start(None)
    keys = [(await server.streams.create(f"bench-{i}"))[1] for i in range(streams)]
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - before - TICK)

    tick = asyncio.ensure_future(ticker())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.publisher", "--url",
        f"rtmp://127.0.0.1:{server.front.port}/live", "--seconds", str(seconds), str(clip),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate("\n".join(keys).encode())
    tick.cancel()
    publishers = json.loads(out)["streams"]
    await asyncio.sleep(1.0)
    sessions, _ = await store.list_sessions(limit=1000)
    await server.stop()
    await store.close()
    ordered = sorted(lags)
    return {
        "machine": machine(),
        "streams": streams,
        "seconds": seconds,
        "segmenter_threads": workers,
        "lag_ms": {
            "p50": round(statistics.median(ordered) * 1000, 2),
            "p99": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
            "max": round(ordered[-1] * 1000, 2),
            "samples": len(ordered),
        },
        "publisher_errors": [p["error"] for p in publishers if p["error"]],
        "sessions": len(sessions),
        "segments": sum(s.source_segments for s in sessions),
        "segment_issues": sorted({i["code"] for s in sessions for i in s.issues}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=HlsConfig().workers)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(args.streams, args.seconds, args.workers, Path(tmp)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
