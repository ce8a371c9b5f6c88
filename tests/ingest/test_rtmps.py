"""RTMPS: publishers over TLS on the second address, as real clients make them.

ffmpeg publishes over ``rtmps://`` to a certificate made for the test; the session must be
the one the same clip makes over plain RTMP. A plain client on the TLS port, a TLS client
that stalls in its handshake and a certificate reloaded under a live publish are checked
over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.media import make_flv, read_flv_tags
from ingest.config import RtmpsConfig
from storage.models import SessionRecord
from tests.support.certs import TestCertificate, make_certificate, served_fingerprint
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.rtmp_client import SocketPublisher
from tests.support.stack import Stack, start_stack


@pytest.fixture
def cert(tmp_path: Path) -> TestCertificate:
    return make_certificate(tmp_path / "tls", "first")


def _rtmps(cert: TestCertificate) -> RtmpsConfig:
    return RtmpsConfig(
        listen="127.0.0.1:0", cert_file=str(cert.cert_file), key_file=str(cert.key_file)
    )


@pytest.fixture
async def stack(tmp_path: Path, cert: TestCertificate) -> AsyncIterator[Stack]:
    s = await start_stack(tmp_path, hls=True, rtmps=_rtmps(cert), handshake_timeout=1.0)
    yield s
    await s.close()


async def _ended(stack: Stack, count: int, timeout: float = 30.0) -> list[SessionRecord]:
    async with asyncio.timeout(timeout):
        while True:
            rows, _ = await stack.store.list_sessions(limit=100)
            if len(rows) >= count and all(r.status == "ended" for r in rows):
                return sorted(rows, key=lambda r: r.created_at)
            await asyncio.sleep(0.05)


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [
        dict(r.__dict__["fields"])
        for r in caplog.records
        if r.name == "ingest.listener" and r.msg == event
    ]


def _comparable(session: SessionRecord) -> dict[str, object]:
    """What one clip's session must be, whichever way it came in."""
    return {
        "end_reason": session.end_reason,
        "media_bytes": session.media_bytes,
        "media_duration": session.media_duration,
        "tracks": [
            {k: v for k, v in track.items() if k not in ("bitrate", "fps")}
            for track in session.tracks
        ],
        "source_segments": session.source_segments,
        "source_segments_duration": session.source_segments_duration,
    }


@pytest.mark.slow
async def test_ffmpeg_over_rtmps_makes_the_session_plain_rtmp_makes(
    stack: Stack, tmp_path: Path
) -> None:
    _, key = await stack.streams.create("cam")
    source = make_flv(tmp_path / "clip.flv", seconds=3, size=(640, 360), fps=30)
    tags = [t for t in read_flv_tags(source) if t.tag_type in (8, 9)]
    span = (tags[-1].timestamp - tags[0].timestamp) / 1000
    assert await publish_with_ffmpeg(source, stack.tls_url(key), realtime=True) == 0
    assert await publish_with_ffmpeg(source, stack.url(key), realtime=True) == 0
    over_tls, plain = await _ended(stack, 2)

    assert _comparable(over_tls) == _comparable(plain)
    assert over_tls.end_reason == "unpublished"
    assert over_tls.media_bytes == sum(len(t.body) for t in tags)
    assert abs(over_tls.duration - span) <= 0.2
    assert over_tls.source_segments >= 2
    # The RTMP bytes inside TLS: the same publish but for the tcUrl in connect.
    assert abs(over_tls.bytes_received - plain.bytes_received) < 64
    tls_segments = await stack.store.list_segments(over_tls.id)
    plain_segments = await stack.store.list_segments(plain.id)
    assert [(s["duration"], s["bytes"]) for s in tls_segments] == [
        (s["duration"], s["bytes"]) for s in plain_segments
    ]


async def test_rtmps_counts_every_rtmp_byte(
    stack: Stack, tmp_path: Path, cert: TestCertificate
) -> None:
    _, key = await stack.streams.create("exact")
    port = stack.rtmp.tls_port
    assert port is not None
    pub = await SocketPublisher.open(port, name=key, tls=cert.client_context())
    await pub.publish()
    for tag in read_flv_tags(make_flv(tmp_path / "clip.flv", seconds=1)):
        if tag.tag_type == 9:
            pub.conn.send_video(tag.timestamp, tag.body)
        elif tag.tag_type == 8:
            pub.conn.send_audio(tag.timestamp, tag.body)
    pub.conn.unpublish()
    await pub.flush()
    (session,) = await _ended(stack, 1)
    assert session.end_reason == "unpublished"
    assert session.bytes_received == pub.conn.bytes_sent
    pub.close()


async def test_a_plain_client_on_the_tls_port_is_refused_with_a_reason(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.listener")
    port = stack.rtmp.tls_port
    assert port is not None
    pub = await SocketPublisher.open(port, name="whatever")
    await pub.wait_closed()
    assert not [e for e in pub.events if type(e).__name__ == "HandshakeCompleted"]
    async with asyncio.timeout(10):
        while not _events(caplog, "connection_closed"):
            await asyncio.sleep(0.02)
    (closed,) = _events(caplog, "connection_closed")
    assert closed["cause"] == "tls_error"
    assert "plain RTMP client on the TLS port" in closed["reason"]
    assert not stack.rtmp.connections
    # The plain port still takes plain RTMP.
    plain = await SocketPublisher.open(stack.rtmp.port, name="whatever")
    await plain.wait_closed()  # refused by key, after a real handshake
    pub.close()
    plain.close()


async def test_a_tls_handshake_that_stalls_is_cut_at_the_handshake_deadline(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.listener")
    port = stack.rtmp.tls_port
    assert port is not None
    # The first bytes of a real ClientHello, then nothing.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="x")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(hello[: len(hello) // 2])
    await writer.drain()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(20):
        assert await reader.read() == b""  # closed by the server
    waited = loop.time() - started
    writer.close()
    (closed,) = _events(caplog, "connection_closed")
    assert closed["cause"] == "handshake_timeout"
    assert closed["reason"].startswith("TLS handshake not finished")
    # The handshake deadline (1 s here) counts from the accept: not cut early.
    assert waited >= 0.9
    assert not stack.rtmp.connections


async def test_a_tls_connection_counts_as_pending_until_it_publishes(
    tmp_path: Path, cert: TestCertificate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stack = await start_stack(
        tmp_path, rtmps=_rtmps(cert), max_pending_per_address=2, max_connections=100
    )
    try:
        port = stack.rtmp.tls_port
        assert port is not None
        stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        async with asyncio.timeout(10):
            while len(stack.rtmp.connections) < 2:
                await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(10):
            # Refused at once (reset before a byte is read), TLS handshakes counted.
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
        (refused,) = _events(caplog, "connection_refused")
        assert refused["reason"].startswith("max_pending_per_address")
        assert len(stack.rtmp.connections) == 2
        writer.close()
        for _, w in stalled:
            w.close()
    finally:
        await stack.close()


@pytest.mark.slow
async def test_certificate_reload_under_a_live_publish(
    stack: Stack, tmp_path: Path, cert: TestCertificate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest.listener")
    port = stack.rtmp.tls_port
    assert port is not None
    assert await served_fingerprint(port) == cert.fingerprint
    _, key = await stack.streams.create("live")
    source = make_flv(tmp_path / "clip.flv", seconds=4, size=(320, 240))
    media = sum(len(t.body) for t in read_flv_tags(source) if t.tag_type in (8, 9))
    ffmpeg = await start_ffmpeg(source, stack.tls_url(key), realtime=True)
    async with asyncio.timeout(15):
        while not stack.owner.live_sessions():
            await asyncio.sleep(0.05)

    # A key that does not match: refused, the running certificate kept.
    other = make_certificate(tmp_path / "tls2", "second")
    shutil.copy(other.key_file, cert.key_file)
    assert not stack.rtmp.reload_certificate(_rtmps(cert))
    (rejected,) = _events(caplog, "rtmps_certificate_rejected")
    assert "does not belong to the certificate" in rejected["error"]
    assert await served_fingerprint(port) == cert.fingerprint

    # The new pair in place (as a renewal writes it), then a reload.
    shutil.copy(other.cert_file, cert.cert_file)
    stack.rtmp.apply(stack.rtmp.config, _rtmps(cert))
    assert await served_fingerprint(port) == other.fingerprint
    (loaded,) = _events(caplog, "rtmps_certificate_loaded")
    assert loaded["certificate"] == other.fingerprint

    assert await ffmpeg.wait() == 0
    (session,) = await _ended(stack, 1)
    assert session.end_reason == "unpublished"
    assert session.media_bytes == media
