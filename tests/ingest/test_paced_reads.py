"""Paced reads never limit throughput: a paced read takes everything that is waiting.

A stand-in transport holds the bytes "in the kernel" and reads like asyncio's selector
loop (one read of at most ``max_size`` per loop iteration while reading is on), so the
read intervals a burst costs are exact. Over real sockets, on both event loops the server
uses (asyncio's and uvloop's, whose reads take at most 256 KiB and 256,000 bytes), the end
of every interval must take all that the kernel held then, and a publisher we close keeps
what had reached the host. Outcomes are counted (intervals, bytes), never timed.
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

from bench.parse_throughput import publishing_pair
from ingest.config import RtmpConfig
from ingest.listener import RtmpProtocol, RtmpServer
from sessions.owner import REPLACED_REASON, DuplicatePolicy
from tests.support.recorder import AllowAll, OwnedRecorder, Recorder
from tests.support.rtmp_client import SocketPublisher

Runner = Callable[[Coroutine[Any, Any, None]], None]
LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])

#: What one read of asyncio's loop takes at most (uvloop's: 256,000 bytes).
READ_MAX = 256 * 1024
#: Kernel buffers asked for, to hold a burst while the server waits out an interval (the
#: kernel caps them at net.core.rmem_max / wmem_max).
SOCKET_BUFFER = 8 << 20
BURST_MESSAGES = 24
MESSAGE = b"\x27\x01\x00\x00\x00" + bytes(READ_MAX)
KEYFRAME = b"\x17\x01\x00\x00\x00" + bytes(200)


async def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def _count_intervals(proto: RtmpProtocol) -> list[int]:
    """Counts the read intervals the connection waits out from now on (each ends in one
    call)."""
    count = [0]
    release = proto._release_read

    def counted() -> None:
        count[0] += 1
        release()

    proto._release_read = counted  # type: ignore[method-assign]
    return count


class KernelTransport:
    """A socket transport without a socket: bytes that :meth:`arrive` wait in
    :attr:`waiting`; while reading is on, each loop iteration hands the protocol one read
    of at most :attr:`max_size` bytes, as asyncio's selector loop does."""

    max_size = READ_MAX

    def __init__(self, protocol: RtmpProtocol) -> None:
        self.protocol = protocol
        self.waiting = bytearray()
        self.paused = False
        self._scheduled = False

    def arrive(self, data: bytes) -> None:
        self.waiting += data
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and not self.paused and self.waiting:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._read)

    def _read(self) -> None:
        self._scheduled = False
        if self.paused or not self.waiting:
            return
        data = bytes(self.waiting[: self.max_size])
        del self.waiting[: self.max_size]
        self.protocol.data_received(data)
        self._schedule()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        self._schedule()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.1", 50000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def test_a_burst_is_taken_when_the_interval_ends() -> None:
    """A publisher far faster than real time (a recording pushed without pacing, an
    encoder catching up) has 6 MB waiting: all of it is taken when the interval ends, not
    one read's worth per interval (which capped one publisher at ~42 Mb/s)."""
    client, setup = publishing_pair(4096)
    recorder = Recorder()
    server = RtmpServer(RtmpConfig(read_interval=0.05), AllowAll(), recorder)
    proto = RtmpProtocol(server)
    transport = KernelTransport(proto)
    proto.connection_made(transport)  # type: ignore[arg-type]
    transport.arrive(setup)
    await _until(lambda: proto.sink is not None)
    client.send_video(0, KEYFRAME)
    transport.arrive(client.data_to_send())
    await _until(lambda: not transport.waiting and transport.paused)  # in an interval
    intervals = _count_intervals(proto)
    for n in range(BURST_MESSAGES):
        client.send_video(1 + n, MESSAGE)
    transport.arrive(client.data_to_send())
    burst = len(transport.waiting)
    await _until(lambda: not transport.waiting)
    assert burst // READ_MAX >= BURST_MESSAGES  # one read per interval needs that many
    assert intervals[0] <= 1, f"{intervals[0]} read intervals for {burst} bytes"
    assert len(recorder.publishes[0].media_events) == 1 + BURST_MESSAGES
    proto.connection_lost(None)


# -- over real sockets --------------------------------------------------------------------


async def _publishing(
    server: RtmpServer,
    name: str = "key",
    before_media: Callable[[RtmpProtocol], None] = lambda proto: None,
) -> tuple[SocketPublisher, RtmpProtocol]:
    """A publisher that has sent one keyframe (so the server is in a read interval), and
    its connection on the server (with large kernel buffers on both ends); ``before_media``
    is called with the connection before the keyframe is sent."""
    before = set(server.connections)
    pub = await SocketPublisher.open(server.port, name=name)
    pub.writer.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER
    )
    await pub.publish()
    (proto,) = server.connections - before
    assert proto.transport is not None and proto.sink is not None
    proto.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER
    )
    before_media(proto)
    pub.conn.send_video(0, KEYFRAME)
    await pub.flush()
    await _until(lambda: proto.bytes_received == pub.bytes_sent)
    return pub, proto


def _waiting(proto: RtmpProtocol) -> int:
    """Bytes that reached the server's socket and were not read yet (FIONREAD)."""
    assert proto.transport is not None
    fd = proto.transport.get_extra_info("socket").fileno()
    waiting: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, bytes(4)))[0]
    return waiting


def _note_interval_ends(proto: RtmpProtocol, ends: list[tuple[int, int]]) -> None:
    """Note in ``ends``, at the end of each read interval from now on: (bytes waiting in
    the kernel, bytes read so far)."""
    release = proto._release_read

    def noted() -> None:
        ends.append((_waiting(proto), proto.bytes_received))
        release()

    proto._release_read = noted  # type: ignore[method-assign]


def _send_burst(pub: SocketPublisher) -> None:
    for n in range(BURST_MESSAGES):
        pub.conn.send_video(1 + n, MESSAGE)


async def _burst_over_a_socket() -> None:
    recorder = Recorder()
    config = RtmpConfig(listen="127.0.0.1:0", read_interval=0.05)
    server = RtmpServer(config, AllowAll(), recorder)
    await server.start()
    try:
        ends: list[tuple[int, int]] = []
        pub, proto = await _publishing(server, before_media=lambda p: _note_interval_ends(p, ends))
        _send_burst(pub)
        await pub.flush()
        await _until(lambda: proto.bytes_received == pub.bytes_sent)
        assert any(waiting for waiting, _ in ends), "no interval ended with bytes waiting"
        # What waited when an interval ended was read before the next one ended.
        then = [read for _, read in ends[1:]] + [proto.bytes_received]
        for (waiting, read), later in zip(ends, then, strict=True):
            assert later - read >= waiting, f"{waiting} bytes waited, {later - read} were read"
        assert len(recorder.publishes[0].media_events) == 1 + BURST_MESSAGES
        pub.close()
    finally:
        await server.close()


@LOOPS
def test_every_interval_takes_what_waits_in_the_kernel(run: Runner) -> None:
    """6 MB sent at once over a socket: whatever the kernel holds when an interval ends
    (more than one read's worth where its buffers allow) is read before the next one."""
    run(_burst_over_a_socket())


async def _replaced_with_bytes_waiting() -> None:
    recorder = registry = OwnedRecorder(AllowAll(), DuplicatePolicy.REPLACE)
    # A long interval: what the publisher sends next waits in the kernel when the new
    # publisher arrives.
    config = RtmpConfig(listen="127.0.0.1:0", read_interval=30.0)
    server = RtmpServer(config, registry, registry)
    await server.start()
    try:
        old, proto = await _publishing(server, "same")
        assert proto.transport is not None
        sock = proto.transport.get_extra_info("socket")
        # As much as surely fits in the server's receive buffer (several reads' worth
        # where the kernel allows it).
        room = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 4
        count = max(1, min(BURST_MESSAGES, room // len(MESSAGE)))
        message = MESSAGE if room >= len(MESSAGE) else MESSAGE[: room // 2]
        for n in range(count):
            old.conn.send_video(1 + n, message)
        await old.flush()
        await _until(lambda: proto.bytes_received + _waiting(proto) == old.bytes_sent)
        assert _waiting(proto) > 0
        new = await SocketPublisher.open(server.port, name="same")
        await new.publish()
        first = recorder.publishes[0]
        assert first.end is not None
        assert first.end[:2] == ("closed_locally", REPLACED_REASON)
        assert first.end[2] == old.bytes_sent
        assert len(first.media_events) == 1 + count
        new.close()
        old.close()
    finally:
        await server.close()


@LOOPS
def test_a_replaced_publisher_keeps_what_already_arrived(run: Runner) -> None:
    """Closing a publisher from our side (replaced, kicked, shutdown) first takes what has
    already reached the host: its session ends with every byte it sent before."""
    run(_replaced_with_bytes_waiting())
