"""Shared helpers for the HLS tests: clips as message streams, playlist parsing, probing."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import av

from bench.media import FlvTag
from ingest.flv import VideoPacket, parse_audio, parse_video
from sessions.hls import Segmenter, SegmentInfo

FRAME = 1 / 30


def push(
    segmenter: Segmenter, tags: list[FlvTag], arrival: float = 1_700_000_000.0
) -> list[SegmentInfo]:
    """Feed every audio/video tag; returns all completed segments, finish included."""
    done: list[SegmentInfo] = []
    for index, tag in enumerate(tags):
        if tag.tag_type in (8, 9):
            done += segmenter.add(tag.tag_type, tag.timestamp, tag.body, arrival + index / 100)
    return done + segmenter.finish()


def media_duration(tags: list[FlvTag]) -> float:
    """From the first video keyframe (audio-only: first audio frame) to the end of the
    longest track (its last DTS plus one frame duration), in seconds."""
    has_video = any(tag.tag_type == 9 for tag in tags)
    start: int | None = None
    last: dict[int, int] = {}
    step: dict[int, int] = {}
    for tag in tags:
        if tag.tag_type not in (8, 9):
            continue
        parse = parse_video if tag.tag_type == 9 else parse_audio
        for packet in parse(tag.body, tag.timestamp):
            if packet.kind != "frame":
                continue
            key = packet.is_keyframe if isinstance(packet, VideoPacket) else not has_video
            if start is None and key:
                start = packet.dts
            if tag.tag_type in last and packet.dts > last[tag.tag_type]:
                step[tag.tag_type] = packet.dts - last[tag.tag_type]
            last[tag.tag_type] = packet.dts
    assert start is not None
    return (max(last[kind] + step[kind] for kind in last) - start) / 1000


def shift(tags: list[FlvTag], offset: int) -> list[FlvTag]:
    return [FlvTag(t.tag_type, (t.timestamp + offset) & 0xFFFF_FFFF, t.body) for t in tags]


@dataclass
class Playlist:
    tags: dict[str, str] = field(default_factory=dict)
    segments: list[tuple[float, str]] = field(default_factory=list)
    discontinuities: list[int] = field(default_factory=list)  # index of the segment after
    maps: list[str] = field(default_factory=list)
    date_times: list[str] = field(default_factory=list)
    endlist: bool = False


def parse_playlist(path: Path) -> Playlist:
    lines = path.read_text().splitlines()
    assert lines[0] == "#EXTM3U"
    result = Playlist()
    duration: float | None = None
    for line in lines[1:]:
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].rstrip(","))
        elif line == "#EXT-X-ENDLIST":
            result.endlist = True
        elif line == "#EXT-X-DISCONTINUITY":
            result.discontinuities.append(len(result.segments))
        elif line.startswith("#EXT-X-MAP:"):
            result.maps.append(line.split('URI="')[1].rstrip('"'))
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            result.date_times.append(line.split(":", 1)[1])
        elif line.startswith("#EXT"):
            name, _, value = line.partition(":")
            result.tags[name] = value
        elif line:
            assert duration is not None
            result.segments.append((duration, line))
            duration = None
    return result


def ffprobe(path: Path, *entries: str) -> dict[str, object]:
    command = ["ffprobe", "-v", "error", "-of", "json", "-show_entries", ",".join(entries)]
    if path.suffix == ".m3u8":
        command += ["-allowed_extensions", "ALL"]
    out = subprocess.run([*command, str(path)], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "", out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def segment_file(directory: Path, segment: SegmentInfo, scratch: Path) -> Path:
    """A playable file for one segment (the init segment prepended for fMP4)."""
    path = directory / segment.uri
    if segment.init_uri is None:
        return path
    joined = scratch / (segment.uri + ".mp4")
    joined.write_bytes((directory / segment.init_uri).read_bytes() + path.read_bytes())
    return joined


def check_decodes(path: Path, *, video: bool) -> tuple[float, tuple[int, int] | None]:
    """Demux and decode the start of a segment; returns (first dts in s, picture size).

    The first video packet must be a keyframe and decode to a picture."""
    with av.open(str(path)) as container:
        streams = container.streams.video if video else container.streams.audio
        stream = streams[0]
        first_dts: float | None = None
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            if first_dts is None:
                assert packet.time_base is not None
                first_dts = float(packet.dts * packet.time_base)
                if video:
                    assert packet.is_keyframe
            frames = packet.decode()
            if frames:
                frame = frames[0]
                size = (frame.width, frame.height) if isinstance(frame, av.VideoFrame) else None
                assert first_dts is not None
                return first_dts, size
    raise AssertionError(f"{path}: nothing decoded")
