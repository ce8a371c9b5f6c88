"""What renditions cost: real-time factor and CPU per rendition, and ladders per machine.

A synthetic 720p30 H.264 + AAC clip (~2.5 Mb/s, camera-like noise, 2 s GOP) is cut by the
source segmenter once; what its tap hands over is kept, so only the transcoding is timed.

``costs`` (the default) runs the ladder in this process: the decoding alone, each profile
alone, then the whole ladder {480p, 360p, 240p}, each ``--repeat`` times, and prints the
real-time factor (media seconds per wall second) and CPU seconds per media second (all
threads: FFmpeg's decoder and x264's); a rendition's cost is its run's less the decoding's.
The ladders one machine holds in real time follow: its cores over one ladder's CPU per
media second.

``realtime --sessions N`` checks that estimate: N sessions fed at the clip's own pace, as
live publishers are, through a :class:`~sessions.transcode.pool.TranscodePool` of
``--processes`` processes, with the server's ``max_lag``; it holds N ladders if no frame
was dropped (and says how far behind they were at the end).

    python -m bench.transcode                       # costs, libx264
    python -m bench.transcode realtime --sessions 2 --processes 2
    python -m bench.transcode --encoder nvenc       # exits with the reason where none
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.media import make_flv, media_tags
from bench.parse_throughput import machine
from bench.procstat import cpu_seconds
from ingest.profiles import Profile
from sessions.hls import Segmenter
from sessions.transcode import (
    EngineSettings,
    FeedItem,
    Ladder,
    MediaFrame,
    Renditions,
    RenditionSegment,
    RenditionsReport,
    RenditionsTarget,
    SourceInfo,
    Transcoder,
)
from sessions.transcode.encoders import LIBX264, NVENC, nvenc_problem
from sessions.transcode.pool import TranscodePool, TranscodeSettings
from sessions.transcode.tap import RenditionsTap

LADDER = (
    Profile("480p", 854, 480, 1_400_000),
    Profile("360p", 640, 360, 800_000),
    Profile("240p", 426, 240, 400_000),
)
FPS = 30


class KeptBatches:
    """A :class:`~sessions.transcode.Renditions` that keeps the batches it is fed (what
    the segmenter's tap hands over) and makes nothing."""

    def __init__(self) -> None:
        self.batches: list[list[FeedItem]] = []

    def feed(self, items: Sequence[FeedItem]) -> None:
        self.batches.append(list(items))

    def report(self) -> RenditionsReport:
        return RenditionsReport([])

    def take_segments(self) -> list[RenditionSegment]:
        return []

    def finish(self) -> concurrent.futures.Future[RenditionsReport]:
        done: concurrent.futures.Future[RenditionsReport] = concurrent.futures.Future()
        done.set_result(self.report())
        return done


def source_batches(root: Path, seconds: float, height: int) -> tuple[list[list[FeedItem]], float]:
    """The tap's batches for a clip of ``height`` lines, and its media seconds."""
    width = height * 16 // 9 + (height * 16 // 9) % 2
    clip = make_flv(
        root / "clip.flv",
        size=(width, height),
        fps=FPS,
        gop=2 * FPS,
        seconds=seconds,
        bitrate=2_400_000 if height <= 720 else 5_000_000,
    )
    kept = KeptBatches()
    segmenter = Segmenter(root / "source", tap=RenditionsTap(kept))
    for tag in media_tags(clip):
        segmenter.add(tag.tag_type, tag.timestamp, tag.body, 0.0)
    segmenter.finish()
    frames = [i for b in kept.batches for i in b if isinstance(i, MediaFrame) and i.video]
    media = (frames[-1].dts - frames[0].dts) / 1000 + 1 / FPS
    return kept.batches, media


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_ladder(
    batches: list[list[FeedItem]],
    profiles: Sequence[Profile],
    folder: Path,
    encoder: str,
    preset: str,
) -> tuple[float, float, RenditionsReport]:
    """Wall and CPU seconds of one ladder over every batch, in this process."""
    shutil.rmtree(folder, ignore_errors=True)
    ladder = Ladder(
        RenditionsTarget("bench", folder),
        profiles,
        EngineSettings(encoder, preset, max_lag=1e12),
        source=SourceInfo(fps=FPS),
        clock=time.time,
    )
    cpu, wall = _process_cpu(), time.perf_counter()
    for batch in batches:
        ladder.feed(batch)
    ladder.finish()
    return time.perf_counter() - wall, _process_cpu() - cpu, ladder.report()


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def costs(args: argparse.Namespace, encoder: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        batches, media = source_batches(root, args.seconds, args.height)
        run_ladder(batches, LADDER[-1:], root / "warm", encoder, args.preset)  # warm up
        cases: list[tuple[str, tuple[Profile, ...]]] = [("decode only", ())]
        cases += [(p.name, (p,)) for p in LADDER]
        cases.append(("ladder " + "+".join(p.name for p in LADDER), LADDER))
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in cases}
        for _ in range(args.repeat):  # interleaved, so a noisy neighbour hits them all
            for name, profiles in cases:
                wall, cpu, report = run_ladder(
                    batches, profiles, root / "out", encoder, args.preset
                )
                if any(p.dropped_frames for p in report.profiles) or report.issues:
                    raise RuntimeError(f"{name}: {report.issues}")
                runs[name].append((wall, cpu))
    decode_cpu = statistics.median(cpu for _, cpu in runs["decode only"])
    result: dict[str, Any] = {}
    for name, measured in runs.items():
        cpu_per_second = [cpu / media for _, cpu in measured]
        entry: dict[str, Any] = {
            "realtime_factor": _spread([media / wall for wall, _ in measured]),
            "cpu_seconds_per_media_second": _spread(cpu_per_second),
        }
        if name in {p.name for p in LADDER}:
            entry["rendition_cpu_per_media_second"] = _spread(
                [(cpu - decode_cpu) / media for _, cpu in measured]
            )
        result[name] = entry
    ladder = result[cases[-1][0]]["cpu_seconds_per_media_second"]
    cores = os.cpu_count() or 1
    return {
        "media_seconds": round(media, 3),
        "runs_each": args.repeat,
        "cases": result,
        "ladders_in_real_time_per_core": round(1 / ladder["median"], 2),
        f"ladders_in_real_time_on_{cores}_cores": round(cores / ladder["median"], 2),
        "ladders_range_on_these_cores": [
            round(cores / ladder["max"], 2),
            round(cores / ladder["min"], 2),
        ],
    }


def realtime(args: argparse.Namespace, encoder: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        batches, media = source_batches(root, args.seconds, args.height)
        pool: Transcoder = TranscodePool(
            TranscodeSettings(
                processes=args.processes,
                preset=args.preset,
                encoder=encoder,
                max_lag=args.max_lag,
            )
        )
        try:
            # Start the processes (and their imports) before the clock starts.
            warm = pool.start(RenditionsTarget("warm", root / "warm"), LADDER[-1:])
            warm.finish().result()
            sessions: list[Renditions] = [
                pool.start(RenditionsTarget(f"s{n}", root / f"s{n}"), LADDER, SourceInfo(fps=FPS))
                for n in range(args.sessions)
            ]
            assert isinstance(pool, TranscodePool)
            pids = [p.pid for p in pool.processes if p.pid is not None]
            cpu = sum(cpu_seconds(pid) for pid in pids)
            start = time.time()
            for batch in batches:
                first = next(i for i in batch if isinstance(i, MediaFrame))
                delay = start + first.dts / 1000 - time.time()
                if delay > 0:
                    time.sleep(delay)
                now = time.time()
                stamped = [
                    i._replace(arrival=now) if isinstance(i, MediaFrame) else i for i in batch
                ]
                for session in sessions:
                    session.feed(stamped)
            fed = time.time()
            reports = [s.finish().result(timeout=600) for s in sessions]
            done = time.time()
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu
        finally:
            pool.close()
    dropped = sum(p.dropped_frames for r in reports for p in r.profiles)
    return {
        "media_seconds": round(media, 3),
        "sessions": args.sessions,
        "processes": args.processes,
        "max_lag": args.max_lag,
        "dropped_frames": dropped,
        "lag_issues": sum(
            1 for r in reports for i in r.issues if i["code"] == "transcode_realtime"
        ),
        "seconds_to_finish_after_the_last_frame": round(done - fed, 2),
        "transcoder_cpu_seconds_per_media_second": round(cpu / media, 3),
        "held_in_real_time": dropped == 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=("costs", "realtime"), default="costs")
    parser.add_argument("--encoder", choices=("libx264", "nvenc"), default="libx264")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length")
    parser.add_argument("--height", type=int, default=720, help="the source's lines")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case (costs)")
    parser.add_argument("--sessions", type=int, default=1, help="ladders at once (realtime)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-lag", type=float, default=4.0)
    args = parser.parse_args(argv)
    encoder = LIBX264
    if args.encoder == "nvenc":
        problem = nvenc_problem()
        if problem is not None:
            print(f"h264_nvenc is not usable on this machine, nothing measured: {problem}")
            return 0
        encoder = NVENC
    measure = costs if args.mode == "costs" else realtime
    load_before = os.getloadavg()[0]
    result = {
        "machine": machine(),
        "encoder": encoder,
        "preset": args.preset,
        "source": f"{args.height}p{FPS}",
        **measure(args, encoder),
        # The machine may be shared: how busy it was (1-minute load, before and after).
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
