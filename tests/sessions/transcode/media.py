"""Driving renditions as the session side will: a real source segmenter, tapped, fed the
messages of real clips; and reading what they wrote with ffprobe."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.media import FlvTag
from ingest.profiles import Profile
from sessions.hls import Segmenter, SegmentInfo
from sessions.transcode import (
    EngineSettings,
    Ladder,
    Renditions,
    RenditionsReport,
    RenditionsTarget,
    SourceInfo,
)
from sessions.transcode.ladder import InlineRenditions
from sessions.transcode.tap import RenditionsTap
from tests.sessions.hls.media import parse_playlist

FPS = 30
#: Where the clips' timeline starts (wall clock, seconds).
T0 = 1_700_000_000.0


def arrival(tag: FlvTag) -> float:
    """A message's arrival: on time, as a live encoder sends it."""
    return T0 + tag.timestamp / 1000


@dataclass
class Run:
    folder: Path
    source: list[SegmentInfo]
    report: RenditionsReport
    segments: dict[str, list[SegmentInfo]] = field(default_factory=dict)


def segment(
    tags: list[FlvTag],
    folder: Path,
    renditions: Renditions,
    *,
    segment_format: str = "auto",
    now: list[float] | None = None,
    lateness: Callable[[FlvTag], float] | None = None,
    after: Callable[[FlvTag], None] | None = None,
) -> list[SegmentInfo]:
    """Feed every message to a source segmenter tapped by ``renditions``; with ``now``,
    set ``now[0]`` to each message's arrival (plus ``lateness(tag)``) before it, and
    call ``after(tag)`` after it."""
    segmenter = Segmenter(
        folder,
        window=100,
        keep_all=True,
        segment_format=segment_format,  # type: ignore[arg-type]
        tap=RenditionsTap(renditions),
        session_id="s-1",
    )
    done: list[SegmentInfo] = []
    for tag in tags:
        if tag.tag_type not in (8, 9):
            continue
        if now is not None:
            now[0] = arrival(tag) + (lateness(tag) if lateness is not None else 0.0)
        done += segmenter.add(tag.tag_type, tag.timestamp, tag.body, arrival(tag))
        if after is not None:
            after(tag)
    return done + segmenter.finish()


def run_inline(
    tags: list[FlvTag],
    folder: Path,
    profiles: list[Profile],
    *,
    settings: EngineSettings | None = None,
    segment_format: str = "auto",
    lateness: Callable[[FlvTag], float] | None = None,
    watch: Callable[[FlvTag, Ladder], None] | None = None,
) -> Run:
    """Source segments and renditions of a clip, the ladder in this thread (its clock is
    the messages' arrival, plus ``lateness(tag)`` seconds; ``watch`` sees it after each
    message)."""
    now = [T0]
    ladder = Ladder(
        RenditionsTarget("s-1", folder, window=100, record=True, segment_format=segment_format),  # type: ignore[arg-type]
        profiles,
        settings or EngineSettings(),
        source=SourceInfo(fps=FPS),
        clock=lambda: now[0],
    )
    renditions = InlineRenditions(ladder)
    source = segment(
        tags,
        folder,
        renditions,
        segment_format=segment_format,
        now=now,
        lateness=lateness,
        after=None if watch is None else lambda tag: watch(tag, ladder),
    )
    report = renditions.finish().result()
    run = Run(folder, source, report)
    for item in renditions.take_segments():
        run.segments.setdefault(item.profile, []).append(item.info)
    return run


def ffprobe_json(path: Path, *args: str) -> dict[str, Any]:
    command = ["ffprobe", "-v", "error", "-of", "json", *args, str(path)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def streams(path: Path) -> list[dict[str, Any]]:
    """Each stream's codec_type, codec_name, width, height (ffprobe)."""
    found = ffprobe_json(path, "-show_entries", "stream=codec_type,codec_name,width,height")
    return list(found["streams"])


def video_packets(path: Path) -> list[dict[str, Any]]:
    """The video packets' pts_time, size and flags, in file order (ffprobe)."""
    found = ffprobe_json(
        path, "-select_streams", "v", "-show_entries", "packet=pts_time,size,flags"
    )
    return list(found["packets"])


def first_video_pts(path: Path) -> float:
    """The presentation time of a segment's first picture."""
    return min(float(p["pts_time"]) for p in video_packets(path))


def playlist_segments(folder: Path, name: str = "vod.m3u8") -> list[tuple[float, str]]:
    return parse_playlist(folder / name).segments
