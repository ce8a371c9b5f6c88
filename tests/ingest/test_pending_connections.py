"""Connections that have not published yet cannot fill the server: caps per address and in
all, and a total deadline for publishing, over real sockets.

The whole of 127.0.0.0/8 is this host on Linux, so a second address (127.0.0.2) plays the
attacker while real encoders connect from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ingest.admission import Admission, RefusalLog, address_of
from ingest.config import RtmpConfig
from ingest.rtmp import messages as m
from ingest.rtmp.chunks import ChunkWriter
from tests.support.listener import Start, listeners
from tests.support.media import make_flv, publish_with_ffmpeg
from tests.support.rtmp_client import SocketPublisher

start = pytest.fixture(listeners)

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
ATTACKER = "127.0.0.2"


async def _open(port: int, source: str = "127.0.0.1") -> Conn:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _closed_by_server(conn: Conn, timeout: float = 10.0) -> bool:
    """True once the server has closed (or reset) the connection; False if it stays open
    for ``timeout`` seconds."""
    reader, _ = conn
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def _refusals(caplog: pytest.LogCaptureFixture, cap: str) -> list[dict[str, Any]]:
    return [
        r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "connection_refused" and r.fields["reason"] == f"{cap} reached"  # type: ignore[attr-defined]
    ]


@pytest.mark.slow
async def test_one_address_cannot_keep_an_encoder_out(
    start: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Many slow handshakes from one address, more than max_connections: it holds only
    max_pending_per_address of them, the rest are refused with one log line, and ffmpeg
    from another address publishes."""
    server, recorder = await start(
        max_connections=10, max_pending_connections=8, max_pending_per_address=3
    )
    caplog.set_level(logging.WARNING, logger="ingest.listener")
    attackers = [await _open(server.port, ATTACKER) for _ in range(20)]
    for _, writer in attackers:
        writer.write(b"\x03")  # C0, then nothing: a handshake that never finishes
    closed = await asyncio.gather(*(_closed_by_server(c, timeout=2.0) for c in attackers))
    assert closed.count(False) == 3 and closed.count(True) == 17
    (line,) = _refusals(caplog, "max_pending_per_address")
    assert line["limit"] == 3 and line["refused"] == 1
    assert line["remote"].startswith(f"{ATTACKER}:")
    assert server.admission.pending == 3

    clip = make_flv(tmp_path / "clip.flv", seconds=1)
    assert await publish_with_ffmpeg(clip, f"rtmp://127.0.0.1:{server.port}/live/k") == 0
    (sink,) = await recorder.wait_ended()
    assert sink.end is not None and sink.end[0] == "unpublished"
    assert sink.media_events
    for _, writer in attackers:
        writer.close()


async def test_pending_connections_in_all_are_capped(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """The total cap: one more pending connection than it allows is refused (with a log
    line naming the cap); a publisher already publishing is not touched, and a newcomer
    gets in once a pending connection goes."""
    server, recorder = await start(max_connections=10, max_pending_connections=3)
    caplog.set_level(logging.WARNING, logger="ingest.listener")
    live = await SocketPublisher.open(server.port, name="live")
    await live.publish()
    held = [await _open(server.port) for _ in range(3)]
    await _until(lambda: server.admission.pending == 3)
    extra = await _open(server.port)
    assert await _closed_by_server(extra)
    (line,) = _refusals(caplog, "max_pending_connections")
    assert line["limit"] == 3
    assert len(server.connections) == 4
    assert recorder.publishes[0].end is None

    held[0][1].close()
    await _until(lambda: server.admission.pending == 2)
    newcomer = await SocketPublisher.open(server.port, name="new")
    await newcomer.publish()
    assert server.admission.pending == 2
    for _, writer in held[1:]:
        writer.close()
    live.close()
    newcomer.close()


async def test_max_connections_still_counts_publishers(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = await start(max_connections=2, max_pending_connections=1)
    caplog.set_level(logging.WARNING, logger="ingest.listener")
    pub = await SocketPublisher.open(server.port)
    await pub.publish()
    held = await _open(server.port)
    await _until(lambda: server.admission.pending == 1)
    assert await _closed_by_server(await _open(server.port))
    (line,) = _refusals(caplog, "max_connections")
    assert line["limit"] == 2
    held[1].close()
    pub.close()


async def test_a_publisher_no_longer_counts_as_pending(start: Start) -> None:
    """Once publishing, a connection leaves its address's pending count: encoders behind
    one NAT are limited in how many set up at once, not in how many publish."""
    server, _ = await start(max_pending_per_address=1)
    publishers = []
    for n in range(4):
        pub = await SocketPublisher.open(server.port, name=f"k{n}")
        await pub.publish()
        publishers.append(pub)
    assert server.admission.pending == 0
    assert len(server.connections) == 4
    for pub in publishers:
        pub.close()


async def test_trickling_after_the_handshake_is_closed_at_the_publish_deadline(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that finishes the handshake, then sends its connect a byte at a time more
    often than the idle timeout: closed when the total time to publish runs out, and its
    pending slot is freed."""
    server, _ = await start(handshake_timeout=1.0, publish_timeout=1.5, idle_timeout=1.0)
    caplog.set_level(logging.INFO, logger="ingest.listener")
    reader, writer = await _open(server.port)
    writer.write(b"\x03" + bytes(1536))
    await reader.readexactly(1 + 2 * 1536)
    writer.write(bytes(1536))

    url = "rtmp://127.0.0.1/live/" + "x" * 200
    connect = ChunkWriter().write(
        3, m.COMMAND_AMF0, 0, 0, m.command("connect", 1, {"app": "live", "tcUrl": url})
    )

    async def trickle() -> None:
        for byte in connect:  # 20 bytes a second: never done before the deadline
            if writer.is_closing():
                return
            writer.write(bytes((byte,)))
            await asyncio.sleep(0.05)

    task = asyncio.ensure_future(trickle())
    assert await _closed_by_server((reader, writer))
    task.cancel()
    writer.close()
    causes = [
        r.fields["cause"]  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "connection_closed"
    ]
    assert "publish_timeout" in causes
    await _until(lambda: server.admission.pending == 0)


async def test_lower_caps_apply_on_reload(start: Start) -> None:
    server, _ = await start(max_pending_per_address=8)
    held = [await _open(server.port) for _ in range(2)]
    await _until(lambda: server.admission.pending == 2)
    server.apply(replace(server.config, max_pending_per_address=2))
    assert await _closed_by_server(await _open(server.port))
    server.apply(replace(server.config, max_pending_per_address=3))
    third = await _open(server.port)
    assert not await _closed_by_server(third, timeout=0.3)
    for _, writer in [*held, third]:
        writer.close()


async def test_refusal_log_counts_what_it_holds_back(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of refusals makes one line at once and one per interval after, each with
    how many it stands for, so that every refusal is counted and none floods the log."""
    log = RefusalLog()
    log.interval = 0.05
    caplog.set_level(logging.WARNING, logger="ingest.listener")
    for n in range(100):
        log.refused("max_pending_per_address", 32, f"192.0.2.1:{1000 + n}")

    def lines() -> list[dict[str, Any]]:
        return _refusals(caplog, "max_pending_per_address")

    await _until(lambda: len(lines()) == 2)
    first, second = lines()
    assert (first["refused"], first["remote"]) == (1, "192.0.2.1:1000")
    assert (second["refused"], second["remote"]) == (99, "192.0.2.1:1099")
    assert first["limit"] == second["limit"] == 32
    log.refused("max_pending_per_address", 32, "192.0.2.1:2000")  # after a quiet interval
    await _until(lambda: len(lines()) == 3)
    assert lines()[2]["refused"] == 1


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", ""),
    ],
)
def test_addresses_counted_together(host: str, address: str) -> None:
    assert address_of(host) == address


async def test_a_whole_ipv6_64_is_one_address() -> None:
    """With the address injected: one host rotating through its /64 is still one."""
    admission = Admission()
    config = RtmpConfig(max_pending_per_address=2)
    taken = [admission.admit(config, 0, f"2001:db8::{n:x}", "-") for n in range(1, 4)]
    assert taken == ["2001:db8::/64", "2001:db8::/64", None]
    assert admission.admit(config, 0, "2001:db8:0:1::1", "-") == "2001:db8:0:1::/64"
    admission.release("2001:db8::/64")
    assert admission.pending_from("2001:db8::99") == 1
    assert admission.admit(config, 0, "2001:db8::5", "-") == "2001:db8::/64"
