"""Paced reads never limit throughput: a paced read takes everything that is waiting.

Run on both event loops the server uses (asyncio's and uvloop's), since each reads at most
its own amount at a time (256 KiB and 256,000 bytes). Outcomes are counted (read
intervals, bytes), never timed.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from ingest.config import RtmpConfig
from ingest.listener import RtmpProtocol, RtmpServer
from sessions.publishers import REPLACED_REASON, LivePublishers
from tests.support.recorder import AllowAll, Recorder
from tests.support.rtmp_client import SocketPublisher

Runner = Callable[[Coroutine[Any, Any, None]], None]
LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])

#: What one read of either loop takes at most (asyncio: 256 KiB, uvloop: 256,000 bytes).
READ_MAX = 256 * 1024
#: Kernel buffers big enough to hold a whole burst while the server waits out an interval.
SOCKET_BUFFER = 8 << 20
BURST_MESSAGES = 24
MESSAGE = b"\x27\x01\x00\x00\x00" + bytes(256 * 1024)


async def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


async def _publishing(
    server: RtmpServer, name: str = "key"
) -> tuple[SocketPublisher, RtmpProtocol]:
    before = set(server.connections)
    pub = await SocketPublisher.open(server.port, name=name)
    pub.writer.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER
    )
    await pub.publish()
    (proto,) = server.connections - before
    assert proto.transport is not None
    proto.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER
    )
    return pub, proto


def _waiting(proto: RtmpProtocol) -> int:
    """Bytes that reached the server's socket and were not read yet (FIONREAD)."""
    assert proto.transport is not None
    fd = proto.transport.get_extra_info("socket").fileno()
    waiting: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, bytes(4)))[0]
    return waiting


def _count_intervals(proto: RtmpProtocol) -> list[int]:
    """Counts the read intervals the connection waits out (each ends in one call)."""
    count = [0]
    release = proto._release_read

    def counted() -> None:
        count[0] += 1
        release()

    proto._release_read = counted  # type: ignore[method-assign]
    return count


def _send_burst(pub: SocketPublisher, first_ts: int) -> None:
    for n in range(BURST_MESSAGES):
        pub.conn.send_video(first_ts + n, MESSAGE)


async def _burst_faster_than_real_time() -> None:
    recorder = Recorder()
    server = RtmpServer(RtmpConfig(listen="127.0.0.1:0", read_interval=0.05), AllowAll(), recorder)
    await server.start()
    try:
        pub, proto = await _publishing(server)
        pub.conn.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(200))
        await pub.flush()
        await _until(lambda: len(recorder.publishes[0].media_events) == 1)
        intervals = _count_intervals(proto)
        _send_burst(pub, 1)
        await pub.flush()
        await _until(lambda: proto.bytes_received == pub.bytes_sent)
        burst = BURST_MESSAGES * len(MESSAGE)
        # One read of the loop's largest per interval would need burst / READ_MAX of them.
        assert burst // READ_MAX >= BURST_MESSAGES
        assert intervals[0] <= 3, f"{intervals[0]} read intervals for {burst} bytes"
        assert len(recorder.publishes[0].media_events) == 1 + BURST_MESSAGES
        pub.close()
    finally:
        await server.close()


@LOOPS
def test_a_burst_is_read_in_the_interval_it_arrives_in(run: Runner) -> None:
    """A publisher far faster than real time (a recording pushed without pacing, an
    encoder catching up): every byte that waits is taken when the interval ends, not one
    read's worth per interval (which capped one publisher at ~42 Mb/s)."""
    run(_burst_faster_than_real_time())


async def _replaced_with_bytes_waiting() -> None:
    recorder = Recorder()
    registry = LivePublishers(AllowAll(), recorder, "replace")
    # A long interval: the burst is sure to wait in the kernel when the newcomer arrives.
    config = RtmpConfig(listen="127.0.0.1:0", read_interval=30.0)
    server = RtmpServer(config, registry, registry)
    await server.start()
    try:
        old, proto = await _publishing(server, "same")
        old.conn.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(200))
        await old.flush()
        await _until(lambda: len(recorder.publishes[0].media_events) == 1)
        _send_burst(old, 1)
        await old.flush()
        await _until(lambda: proto.bytes_received + _waiting(proto) == old.bytes_sent)
        assert _waiting(proto) > READ_MAX
        new = await SocketPublisher.open(server.port, name="same")
        await new.publish()
        first = recorder.publishes[0]
        assert first.end is not None
        assert first.end[:2] == ("closed_locally", REPLACED_REASON)
        assert first.end[2] == old.bytes_sent
        assert len(first.media_events) == 1 + BURST_MESSAGES
        new.close()
        old.close()
    finally:
        await server.close()


@LOOPS
def test_a_replaced_publisher_keeps_what_already_arrived(run: Runner) -> None:
    """Closing a publisher from our side (replaced, kicked, shutdown) first takes what has
    already reached the host: its session ends with every byte it sent before."""
    run(_replaced_with_bytes_waiting())
