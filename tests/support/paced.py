"""A publisher with controlled pacing: PyAV's FLV muxer over RTMP (FFmpeg's own RTMP
client), fed the packets of a clip at a chosen speed, with video dropped or thinned from
a chosen media time. Run as a child process (PyAV holds the GIL while it connects): see
:func:`start_paced`.

A plan is a JSON object:

* ``speeds``: ``[[media_seconds, speed], ...]``: from that media time on, the media is
  sent at ``speed`` times real time (1: real time; 0.5: half as fast); before the first
  entry, real time.
* ``drop_video_from``: media seconds from which no video packet is sent.
* ``thin_video_from`` and ``keep_one_in``: from that media time, only one video packet in
  ``keep_one_in`` is sent, keyframes always (the frame rate falls; the others are
  skipped).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import av


def _wall_offset(media: float, speeds: list[tuple[float, float]]) -> float:
    """Seconds after the start at which media time ``media`` is due."""
    wall, at, speed = 0.0, 0.0, 1.0
    for start, new_speed in speeds:
        if media <= start:
            break
        wall += (start - at) / speed
        at, speed = start, new_speed
    return wall + (media - at) / speed


def publish(source: Path, url: str, plan: dict[str, Any]) -> None:
    speeds = [(float(a), float(b)) for a, b in plan.get("speeds", [])]
    drop_from = plan.get("drop_video_from")
    thin_from = plan.get("thin_video_from")
    keep = int(plan.get("keep_one_in", 1))
    thinned = 0
    # Sent as read (the clip is in order): no holding one stream's packets back to
    # interleave them with another's, which would stall the audio once video stops.
    options = {"max_interleave_delta": "1"}
    with av.open(str(source)) as src, av.open(url, "w", format="flv", options=options) as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in src.streams}
        start = time.monotonic()
        for packet in src.demux():
            if packet.dts is None or packet.time_base is None:
                continue
            media = float(packet.dts * packet.time_base)
            video = packet.stream.type == "video"
            if video and drop_from is not None and media >= drop_from:
                continue
            if video and thin_from is not None and media >= thin_from and not packet.is_keyframe:
                thinned += 1
                if thinned % keep:
                    continue
            delay = start + _wall_offset(media, speeds) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)


async def start_paced(source: Path, url: str, plan: dict[str, Any]) -> asyncio.subprocess.Process:
    """Start publishing ``source`` to ``url`` following ``plan`` in a child process."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.paced", str(source), url, json.dumps(plan)
    )


if __name__ == "__main__":
    publish(Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))
