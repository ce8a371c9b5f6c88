"""What one socket read costs the event loop: ``asyncio.Protocol`` against
``asyncio.BufferedProtocol``, on asyncio's loop and on uvloop.

A child process writes ``--size``-byte pieces into a socket pair (4.6 KB by default: what
the server's reads averaged at 100 real-time streams); this process reads them with each
kind of protocol in turn and counts its own CPU time per read. A plain protocol gets a
new ``bytes`` per read from the loop; the buffered one hands the loop one shared buffer
and copies what was read into ``bytes`` of its own (the core keeps what it is fed, so
the copy is part of the price). Best of ``--runs``, since a shared machine only adds.

    python -m bench.read_cost --cpu 0 --writer-cpu 1
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

_BUFFER = memoryview(bytearray(1 << 20))


class _Plain(asyncio.Protocol):
    def __init__(self, total: int, done: asyncio.Future[None]) -> None:
        self.left, self.done, self.reads, self.kept = total, done, 0, b""

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        self.kept = data
        self.left -= len(data)
        if self.left <= 0:
            self.done.set_result(None)


class _Buffered(asyncio.BufferedProtocol):
    def __init__(self, total: int, done: asyncio.Future[None]) -> None:
        self.left, self.done, self.reads, self.kept = total, done, 0, b""

    def get_buffer(self, sizehint: int) -> memoryview:
        return _BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        self.reads += 1
        self.kept = _BUFFER[:nbytes].tobytes()
        self.left -= nbytes
        if self.left <= 0:
            self.done.set_result(None)


def _write(sock: socket.socket, size: int, count: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    piece = os.urandom(size)
    for _ in range(count):
        sock.sendall(piece)
        time.sleep(0.00002)  # a pause now and then, so reads stay about one piece each


async def _measure(kind: str, size: int, count: int, writer_cpu: int | None) -> float:
    """CPU microseconds per read."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    factory = _Plain if kind == "plain" else _Buffered
    _, proto = await loop.create_connection(lambda: factory(size * count, done), sock=ours)
    writer = multiprocessing.Process(target=_write, args=(theirs, size, count, writer_cpu))
    started = time.thread_time()
    writer.start()
    await done
    elapsed = time.thread_time() - started
    writer.join()
    theirs.close()
    ours.close()
    return elapsed / proto.reads * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4600, help="bytes per write")
    parser.add_argument("--count", type=int, default=40_000, help="writes per measurement")
    parser.add_argument("--runs", type=int, default=5, help="measurements; the best is shown")
    parser.add_argument("--cpu", type=int, help="pin the reading loop to this CPU")
    parser.add_argument("--writer-cpu", type=int, help="pin the writer to this CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    runners: dict[str, Callable[[Coroutine[Any, Any, float]], float]] = {
        "asyncio": asyncio.run,
        "uvloop": uvloop.run,
    }
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.runs):
        for loop_name, run in runners.items():
            for kind in ("plain", "buffered"):
                cost = run(_measure(kind, args.size, args.count, args.writer_cpu))
                key = (loop_name, kind)
                best[key] = min(best.get(key, cost), cost)
    for (loop_name, kind), cost in best.items():
        print(f"{loop_name:<8} {kind:<9} {cost:6.2f} us/read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
