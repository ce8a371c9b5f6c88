"""The asyncio listener over real sockets: deadlines, policies, and containment of bad peers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.hooks import Decision, PublishAttempt
from ingest.rtmp import messages as m
from ingest.rtmp.chunks import ChunkWriter
from ingest.rtmp.events import ConnectAccepted, StatusReceived
from tests.support.listener import Start, listeners
from tests.support.media import make_flv, publish_with_ffmpeg, read_flv_tags
from tests.support.rtmp_client import SocketPublisher

start = pytest.fixture(listeners)


class DenyKey:
    """Refuses one key (as the stream-key authorizer will)."""

    def __init__(self, bad: str) -> None:
        self.bad = bad

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        if attempt.key == self.bad:
            return Decision(False, "NetStream.Publish.Denied", "invalid stream key")
        return Decision(True)


async def _raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _read_all(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as a close)."""
    async with asyncio.timeout(timeout):
        try:
            return await reader.read()
        except ConnectionError:
            return b""


@pytest.mark.parametrize("c0", [0x06, 0x16, ord("G"), 0x00])
async def test_case_07_wrong_version_closed_without_s0(start: Start, c0: int) -> None:
    server, _ = await start()
    reader, writer = await _raw(server.port)
    writer.write(bytes((c0,)) + os.urandom(1536))
    assert await _read_all(reader) == b""
    writer.close()


async def test_case_06_slow_handshake_closed_at_deadline(start: Start) -> None:
    server, _ = await start(handshake_timeout=0.5)
    reader, writer = await _raw(server.port)
    loop = asyncio.get_running_loop()
    began = loop.time()

    async def trickle() -> None:
        for _ in range(200):
            writer.write(b"\x03")
            await asyncio.sleep(0.05)

    task = asyncio.ensure_future(trickle())
    assert await _read_all(reader) == b""
    elapsed = loop.time() - began
    task.cancel()
    writer.close()
    assert 0.4 <= elapsed < 5.0


async def test_case_05_truncated_handshake_then_eof(start: Start) -> None:
    server, _ = await start()
    reader, writer = await _raw(server.port)
    writer.write(b"\x03" + bytes(700))
    writer.write_eof()
    assert await _read_all(reader) == b""
    await asyncio.sleep(0.05)
    assert not server.connections


async def test_case_24_publish_then_unpublish_releases_at_once(start: Start) -> None:
    server, recorder = await start(policy="replace")
    pub = await SocketPublisher.open(server.port, name="abc?x=1")
    await pub.publish()
    pub.conn.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(100))
    pub.conn.unpublish()
    await pub.flush()
    (sink,) = await recorder.wait_ended()
    assert sink.end is not None and sink.end[0] == "unpublished"
    assert sink.attempt.key == "abc" and sink.attempt.query == "x=1"
    assert len(sink.media_events) == 1
    pub.close()


async def test_case_32_abrupt_close_ends_publish(start: Start) -> None:
    server, recorder = await start()
    pub = await SocketPublisher.open(server.port)
    await pub.publish()
    pub.abort()
    (sink,) = await recorder.wait_ended()
    assert sink.end is not None and sink.end[0] == "closed_by_peer"


async def test_case_32_silent_peer_ends_at_idle_timeout(start: Start) -> None:
    server, recorder = await start(idle_timeout=0.4)
    pub = await SocketPublisher.open(server.port)
    await pub.publish()
    began = asyncio.get_running_loop().time()
    (sink,) = await recorder.wait_ended()
    assert sink.end is not None and sink.end[0] == "idle_timeout"
    assert asyncio.get_running_loop().time() - began >= 0.3
    await pub.wait_closed()


async def test_case_30_rejected_key_gets_error_status_then_close(start: Start) -> None:
    server, recorder = await start(authorizer=DenyKey("wrong"))
    pub = await SocketPublisher.open(server.port, name="wrong")
    status = await pub.wait_for(StatusReceived)
    assert status.level == "error"
    assert status.code == "NetStream.Publish.Denied"
    await pub.wait_closed()
    assert recorder.publishes == []


@pytest.mark.slow
async def test_case_30_ffmpeg_fails_on_a_rejected_key(start: Start, tmp_path: Path) -> None:
    server, recorder = await start(authorizer=DenyKey("wrong"))
    source = make_flv(tmp_path / "clip.flv", seconds=1)
    rc = await publish_with_ffmpeg(source, f"rtmp://127.0.0.1:{server.port}/live/wrong")
    assert rc != 0
    assert recorder.publishes == []
    # The server is unaffected: the right key publishes right after.
    rc = await publish_with_ffmpeg(source, f"rtmp://127.0.0.1:{server.port}/live/right")
    assert rc == 0
    (sink,) = await recorder.wait_ended()
    assert sink.attempt.key == "right"


@pytest.mark.parametrize("app", ["live/", "live/_definst_", "live?x=y"])
async def test_case_31_app_variants(start: Start, app: str) -> None:
    server, recorder = await start()
    pub = await SocketPublisher.open(server.port, app=app, name="key1?token=t")
    await pub.publish()
    assert recorder.publishes[0].attempt.app == "live"
    assert recorder.publishes[0].attempt.key == "key1"
    pub.close()


async def test_unknown_app_is_refused(start: Start) -> None:
    server, recorder = await start()
    pub = await SocketPublisher.open(server.port, app="other")
    status = await pub.wait_for(StatusReceived)
    assert status.code == "NetConnection.Connect.Rejected"
    await pub.wait_closed()
    assert recorder.publishes == []


async def test_case_27_create_stream_before_connect_closes(start: Start) -> None:
    server, _ = await start()
    reader, writer = await _raw(server.port)
    writer.write(b"\x03" + bytes(1536))
    await reader.readexactly(1 + 2 * 1536)
    writer.write(bytes(1536))
    writer.write(ChunkWriter().write(3, m.COMMAND_AMF0, 0, 0, m.command("createStream", 2, None)))
    assert await _read_all(reader) == b""


async def test_case_28_publish_on_unknown_stream_gets_error_then_close(start: Start) -> None:
    server, recorder = await start()
    pub = await SocketPublisher.open(server.port)
    await pub.wait_for(ConnectAccepted)
    bogus = m.command("publish", 5, None, "key", "live")
    pub.writer.write(pub.conn.writer.write(m.CSID_STREAM_COMMAND, m.COMMAND_AMF0, 7, 0, bogus))
    status = await pub.wait_for(StatusReceived)
    assert status.code == "NetStream.Publish.BadName"
    await pub.wait_closed()
    assert recorder.publishes == []


async def test_case_29_second_publisher_replaces_the_first(start: Start) -> None:
    server, recorder = await start(policy="replace")
    first = await SocketPublisher.open(server.port, name="same")
    await first.publish()
    second = await SocketPublisher.open(server.port, name="same")
    await second.publish(timeout=1.0)
    await first.wait_closed(timeout=1.0)
    old, new = recorder.publishes
    assert old.end is not None and "replaced" in old.end[1]
    assert new.end is None
    second.close()


async def test_case_29_second_publisher_rejected_by_policy(start: Start) -> None:
    server, recorder = await start(policy="reject")
    first = await SocketPublisher.open(server.port, name="same")
    await first.publish()
    second = await SocketPublisher.open(server.port, name="same")
    status = await second.wait_for(StatusReceived, timeout=1.0)
    assert status.code == "NetStream.Publish.BadName"
    await second.wait_closed()
    assert len(recorder.publishes) == 1 and recorder.publishes[0].end is None
    # Once the first publisher leaves, the key is free again.
    first.abort()
    await recorder.wait_ended()
    third = await SocketPublisher.open(server.port, name="same")
    await third.publish()
    third.close()


async def test_oversized_message_after_publish_closes_only_that_connection(start: Start) -> None:
    server, recorder = await start(max_message_size=100_000, max_partial_bytes=200_000)
    bad = await SocketPublisher.open(server.port, name="bad")
    good = await SocketPublisher.open(server.port, name="good")
    await bad.publish()
    await good.publish()
    bad.conn.send_video(0, bytes(150_000))
    await bad.flush()
    await bad.wait_closed()
    good.conn.send_video(0, b"\x17\x01\x00\x00\x00")
    good.conn.unpublish()
    await good.flush()
    sinks = {s.attempt.key: s for s in await recorder.wait_ended(2)}
    assert sinks["bad"].end is not None and sinks["bad"].end[0] == "protocol_error"
    assert "exceeds the cap" in sinks["bad"].end[1]
    assert sinks["good"].end is not None and sinks["good"].end[0] == "unpublished"
    assert len(sinks["good"].media_events) == 1


@pytest.mark.slow
async def test_garbage_at_every_stage_leaves_other_publishers_intact(
    start: Start, tmp_path: Path
) -> None:
    server, recorder = await start()
    source = make_flv(tmp_path / "clip.flv", seconds=2)
    url = f"rtmp://127.0.0.1:{server.port}/live/good"
    publish = asyncio.ensure_future(publish_with_ffmpeg(source, url, realtime=True))

    async def garbage(stage: str, seed: int) -> None:
        rng = __import__("random").Random(seed)
        if stage == "handshake":
            reader, writer = await _raw(server.port)
            writer.write(b"\x03" + rng.randbytes(5000))
        else:
            pub = await SocketPublisher.open(server.port, name=f"g{seed}")
            if stage == "commands":
                await pub.wait_for(ConnectAccepted)
            else:
                await pub.publish()
            reader, writer = pub.reader, pub.writer
        for _ in range(20):
            writer.write(rng.randbytes(4096))
            await asyncio.sleep(0.01)
            if writer.is_closing():
                break
        await _read_all(reader)
        writer.close()

    stages = ["handshake", "commands", "media"] * 3
    await asyncio.gather(*(garbage(stage, i) for i, stage in enumerate(stages)))
    assert await publish == 0
    good = next(s for s in recorder.publishes if s.attempt.key == "good")
    await asyncio.wait_for(good.done.wait(), 10)
    expected = [
        (t.tag_type, t.timestamp, t.body) for t in read_flv_tags(source) if t.tag_type != 18
    ]
    assert [(e.message_type, e.timestamp, e.payload) for e in good.media_events] == expected
    assert good.end is not None and good.end[0] == "unpublished"


async def test_peer_that_never_reads_is_paused_not_buffered(start: Start) -> None:
    """A ping flood from a peer that reads nothing: once our replies back up past
    write_buffer_limit, we stop reading from it instead of queueing without bound."""
    server, _ = await start(write_buffer_limit=4096)
    pub = await SocketPublisher.open(server.port)
    await pub.wait_for(ConnectAccepted)
    (proto,) = server.connections
    assert proto.transport is not None
    ping = pub.conn.writer.write(m.CSID_CONTROL, m.USER_CONTROL, 0, 0, m.user_control(6, 1))
    flood = ping * 4096
    sent = 0
    paused_seen = False
    for _ in range(400):  # up to ~50 MiB offered
        pub.writer.write(flood)
        sent += len(flood)
        await asyncio.sleep(0)
        if proto._reading_paused:
            paused_seen = True
            break
        if pub.writer.transport.get_write_buffer_size() > 8 << 20:
            await asyncio.sleep(0.01)
    assert paused_seen, f"reading never paused after {sent} bytes of pings"
    # What we hold for this peer is bounded by the limit plus the replies to one read
    # (asyncio reads at most 256 KiB at a time).
    read_max = 256 * 1024
    assert proto.transport.get_write_buffer_size() < 4096 + read_max
    assert proto.conn is not None and proto.conn.unparsed_bytes <= read_max
    pub.abort()


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_publishing_connection_is_read_once_per_interval(start: Start) -> None:
    """Once publishing, a read holds the connection for the read interval: what
    the publisher sends meanwhile waits in the kernel, then comes in one read, in order."""
    server, recorder = await start(read_interval=2.0)
    pub = await SocketPublisher.open(server.port)
    await pub.publish()
    (proto,) = server.connections
    frame = b"\x27\x01\x00\x00\x00" + bytes(200)
    pub.conn.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(200))
    await pub.flush()
    await _until(
        lambda: len(recorder.publishes) == 1 and len(recorder.publishes[0].media_events) == 1
    )
    (sink,) = recorder.publishes
    assert proto._reading_paused
    for n in range(1, 6):
        pub.conn.send_video(33 * n, frame)
    await pub.flush()
    await asyncio.sleep(0.2)  # well inside the 2 s interval: nothing read yet
    assert len(sink.media_events) == 1
    await _until(lambda: len(sink.media_events) == 6)
    assert [e.timestamp for e in sink.media_events] == [33 * n for n in range(6)]
    pub.conn.unpublish()
    await pub.flush()
    (ended,) = await recorder.wait_ended()
    assert ended.end is not None and ended.end[0] == "unpublished"
    assert ended.end[2] == pub.conn.bytes_sent
    pub.close()


async def test_read_interval_zero_reads_at_once(start: Start) -> None:
    server, recorder = await start(read_interval=0)
    pub = await SocketPublisher.open(server.port)
    await pub.publish()
    (proto,) = server.connections
    events = recorder.publishes[0].media_events
    for n in range(5):
        pub.conn.send_video(33 * n, b"\x17\x01\x00\x00\x00" + bytes(200))
        await pub.flush()
        await _until(lambda: len(events) > n)  # noqa: B023 (awaited in this iteration)
        assert not proto._reading_paused
    pub.close()
