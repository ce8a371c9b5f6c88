"""What one media message costs on each side of the server, without sockets or load.

Two halves, each on one core, over the same 720p30 H.264 + AAC clip (~2.5 Mb/s):

* ``loop``: the event-loop side, as the listener runs it: one ``data_received`` per
  message (a real-time publisher's message arrives in a read of its own), the sans-IO
  core, the session's accounting (which parses the FLV headers once) and the hand-over
  to the segmenter (a list append). ``--connections N`` feeds N publishers in turn (as
  a loaded server's loop goes from socket to socket, each with its own state to bring
  back into the caches) and ``--read-size B`` splits the bytes into reads of about B
  bytes at any point (as TCP delivers them: messages across reads, chunks cut short).
* ``segmenter``: the segmenter thread's side: ``Segmenter.add`` for every message, muxing,
  closing segments and rewriting the playlist, files on the local disk.

Both print microseconds per message and the share of one core that one real-time stream
of the clip costs (its messages per second times that): the best of ``--runs``
measurements, since a shared machine only ever adds time.

    python -m bench.message_path --cpu 1
    python -m bench.message_path --cpu 1 --connections 100 --read-size 4600 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench.media import FlvTag, make_benchmark_clip, media_tags
from bench.parse_throughput import publishing_pair
from ingest.config import RtmpConfig
from ingest.flv import parse_audio, parse_video
from ingest.hooks import Decision, PublishAttempt, PublisherControl, StreamSink
from ingest.listener import RtmpProtocol, RtmpServer
from ingest.rtmp.events import VIDEO, MediaReceived, MetadataReceived
from sessions.accounting import MediaAccount
from sessions.hls import Segmenter


@dataclass
class Result:
    messages: int
    seconds: float
    #: Seconds of the clip's real time that were fed.
    media_seconds: float

    @property
    def us_per_message(self) -> float:
        return self.seconds / self.messages * 1e6

    @property
    def core_share_per_stream(self) -> float:
        """Fraction of one core one real-time stream of the clip costs."""
        return self.seconds / self.media_seconds


class _Transport:
    """What the listener asks of a transport, with nothing behind it."""

    def __init__(self) -> None:
        self.written = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1935) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _AccountingSink:
    """The session's per-message work: account, then queue for the segmenter."""

    def __init__(self) -> None:
        self.account = MediaAccount()
        self.pending: list[tuple[Any, ...]] = []
        self.handed_over = 0

    def media(self, event: MediaReceived) -> None:
        packets = self.account.add(event)
        self.pending.append((event.message_type, event.timestamp, event.payload, 0.0, packets))
        if len(self.pending) >= 32:  # a drain takes the batch away
            self.handed_over += len(self.pending)
            self.pending = []

    def metadata(self, event: MetadataReceived) -> None:
        pass

    def ended(self, cause: str, reason: str, bytes_received: int) -> None:
        pass


class _Accept:
    def __init__(self) -> None:
        self.sinks: list[_AccountingSink] = []

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        return Decision(True)

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        sink = _AccountingSink()
        self.sinks.append(sink)
        return sink


def _wire_messages(tags: list[FlvTag], chunk_size: int) -> tuple[bytes, list[bytes]]:
    """The publish set-up bytes, and each media message's chunks as the client sends them."""
    client, setup = publishing_pair(chunk_size)
    client.data_to_send()
    reads = []
    for tag in tags:
        if tag.tag_type == VIDEO:
            client.send_video(tag.timestamp, tag.body)
        else:
            client.send_audio(tag.timestamp, tag.body)
        reads.append(client.data_to_send())
    return setup, reads


def _split(reads: list[bytes], read_size: int, seed: int = 1) -> list[bytes]:
    """The same bytes as reads of ``read_size`` bytes on average, split anywhere (as TCP
    delivers them), or one read per message with ``read_size`` 0."""
    if not read_size:
        return reads
    stream = b"".join(reads)
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(stream):
        size = rng.randint(read_size // 4, read_size * 7 // 4)
        pieces.append(stream[at : at + size])
        at += size
    return pieces


async def _loop_side(
    tags: list[FlvTag],
    clip_seconds: float,
    repeat: int,
    chunk_size: int,
    connections: int = 1,
    read_size: int = 0,
) -> Result:
    setup, messages = _wire_messages(tags, chunk_size)
    reads = _split(messages, read_size)
    handler = _Accept()
    # Read sizes are --read-size's to choose (paced reads are larger), and the stand-in
    # transport cannot pause: no read interval.
    server = RtmpServer(RtmpConfig(read_interval=0), handler, handler)

    async def publishing() -> tuple[RtmpProtocol, _AccountingSink]:
        proto = RtmpProtocol(server)
        proto.connection_made(cast(asyncio.Transport, _Transport()))
        proto.data_received(setup)
        while proto.sink is None:  # the publish is authorized in a task
            await asyncio.sleep(0)
        return proto, handler.sinks[-1]

    warm, _ = await publishing()
    for data in reads:
        warm.data_received(data)
    publishers = [await publishing() for _ in range(connections)]
    elapsed = 0.0
    if connections == 1:
        proto = publishers[0][0]
        started = time.process_time()
        for _ in range(repeat):
            for data in reads:
                proto.data_received(data)
        elapsed = time.process_time() - started
    else:
        # Each connection gets its own copy of each read (as from the kernel), made
        # outside the measured time; the connections take turns, read by read.
        protos = [proto for proto, _ in publishers]
        for _ in range(repeat):
            for data in reads:
                copies = [bytes(bytearray(data)) for _ in protos]
                started = time.process_time()
                for proto, copy in zip(protos, copies, strict=True):
                    proto.data_received(copy)
                elapsed += time.process_time() - started
    counted = sum(sink.account.messages for _, sink in publishers)
    if counted != len(messages) * repeat * connections:
        raise RuntimeError(
            f"accounted {counted} messages, sent {len(messages) * repeat * connections}"
        )
    return Result(counted, elapsed, clip_seconds * repeat * connections)


def _segmenter_side(tags: list[FlvTag], clip_seconds: float, repeat: int, root: Path) -> Result:
    span = int(clip_seconds * 1000)
    # Parsed up front: on the server the loop parses, the segmenter takes the packets.
    fed = [
        (
            tag.tag_type,
            tag.timestamp + turn * span,
            tag.body,
            (parse_video if tag.tag_type == VIDEO else parse_audio)(
                tag.body, tag.timestamp + turn * span
            ),
        )
        for turn in range(repeat)
        for tag in tags
    ]
    root.mkdir(parents=True)
    warm = Segmenter(root / "warm-up")
    for kind, ts, body, packets in fed[: len(tags)]:
        warm.add(kind, ts, body, 0.0, packets)
    warm.finish()
    segmenter = Segmenter(root / "measured")
    started = time.process_time()
    segments = 0
    for kind, ts, body, packets in fed:
        segments += len(segmenter.add(kind, ts, body, 0.0, packets))
    segments += len(segmenter.finish())
    elapsed = time.process_time() - started
    # Audio before the first video keyframe is dropped (nothing to start a segment with).
    lead = next(i for i, t in enumerate(tags) if t.tag_type == VIDEO and t.body[:2] == b"\x17\x01")
    if segments < repeat * int(clip_seconds / 2) or segmenter.dropped > lead:
        raise RuntimeError(f"{segments} segments, {segmenter.dropped} frames dropped")
    return Result(len(fed), elapsed, clip_seconds * repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length")
    parser.add_argument("--repeat", type=int, default=10, help="times the clip is fed")
    parser.add_argument("--chunk-size", type=int, default=4096, help="publisher's chunk size")
    parser.add_argument("--runs", type=int, default=3, help="measurements; the best is shown")
    parser.add_argument("--cpu", type=int, help="pin to this CPU")
    parser.add_argument(
        "--connections", type=int, default=1, help="loop side: publishers fed in turn"
    )
    parser.add_argument(
        "--read-size",
        type=int,
        default=0,
        help="loop side: mean bytes per read, split anywhere (0: one read per message)",
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tags = media_tags(make_benchmark_clip(root / "clip.flv", args.seconds))
        loops, segmenters = [], []
        for run in range(args.runs):
            loops.append(
                asyncio.run(
                    _loop_side(
                        tags,
                        args.seconds,
                        args.repeat,
                        args.chunk_size,
                        args.connections,
                        args.read_size,
                    )
                )
            )
            segmenters.append(_segmenter_side(tags, args.seconds, args.repeat, root / str(run)))
        loop = min(loops, key=lambda r: r.seconds)
        segmenter = min(segmenters, key=lambda r: r.seconds)
    for name, result in (("loop", loop), ("segmenter", segmenter)):
        print(
            f"{name:<10} {result.us_per_message:6.2f} us/message  "
            f"{result.core_share_per_stream * 100:.3f}% of a core per real-time stream  "
            f"({result.messages} messages)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
