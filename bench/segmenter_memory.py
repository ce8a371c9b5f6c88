"""Resident memory a live HLS segmenter holds.

Feeds N segmenters, all kept alive, the same 720p30 H.264 + AAC clip (~2.5 Mb/s), and
reports how much the process's RSS grew per segmenter; then finishes them one by one in a
fresh round to show the memory is held by live segmenters, not leaked.

    python -m bench.segmenter_memory --count 20
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.media import make_benchmark_clip, media_tags
from bench.parse_throughput import machine
from sessions.hls import Segmenter


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=6.0, help="clip length")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tags = media_tags(make_benchmark_clip(root / "clip.flv", args.seconds))

        def feed(index: int) -> Segmenter:
            segmenter = Segmenter(root / f"live-{index}")
            for tag in tags:
                segmenter.add(tag.tag_type, tag.timestamp, tag.body, time.time())
            return segmenter

        feed(-1).finish()  # warm up: libraries, codecs, allocator pools
        gc.collect()
        base = rss_mib()
        live = [feed(i) for i in range(args.count)]
        gc.collect()
        held = rss_mib()
        for segmenter in live:
            segmenter.finish()
        del live
        gc.collect()
        for i in range(args.count):
            feed(args.count + i).finish()
        gc.collect()
        after = rss_mib()
    result = {
        "machine": machine(),
        "segmenters": args.count,
        "rss_base_mib": round(base, 1),
        "rss_with_live_segmenters_mib": round(held, 1),
        "mib_per_live_segmenter": round((held - base) / args.count, 2),
        "rss_after_as_many_finished_ones_mib": round(after, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
