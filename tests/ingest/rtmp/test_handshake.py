"""Handshake conformance (cases 1-7 of the protocol notes) on the server core."""

from __future__ import annotations

import os

import pytest

from ingest.rtmp import handshake as hs
from ingest.rtmp.events import ConnectionTerminated, ConnectRequested, HandshakeCompleted
from ingest.rtmp.limits import Limits
from ingest.rtmp.server import ServerState
from tests.ingest.rtmp.wire import C1, C2, FakeClock, connect, drain, new_server


def test_case_01_plain_handshake_echoes_c1_and_continues_after_c2() -> None:
    """Case 1: plain C0/C1 → S0=3, S1 (time, zeros, random), S2 = C1; continue after C2."""
    clock = FakeClock(50.0)
    server = new_server(clock=clock)
    server.receive_data(b"\x03")
    assert drain(server) == []
    assert server.data_to_send() == b""  # nothing before the whole C1 is here
    clock.now = 50.25
    server.receive_data(C1)
    assert drain(server) == []
    reply = server.data_to_send()
    assert len(reply) == 1 + 2 * 1536
    assert reply[0] == 3
    s1, s2 = reply[1:1537], reply[1537:]
    assert s1[:4] == (250).to_bytes(4, "big")  # uptime in ms
    assert s1[4:] == bytes(1532)  # zero bytes, then the (here deterministic) random part
    assert s2 == C1
    assert server.state is ServerState.HANDSHAKE_C2
    server.receive_data(C2[:1000])
    assert drain(server) == []
    server.receive_data(C2[1000:])
    assert drain(server) == [HandshakeCompleted(digest=False)]
    assert server.state is ServerState.CONNECTING
    assert server.data_to_send() == b""


def test_case_01_s1_random_part_comes_from_the_random_source() -> None:
    """Case 1: S1's 1528 trailing bytes are the injected random bytes."""
    server = new_server(random=lambda n: b"\xab" * n)
    server.receive_data(b"\x03" + C1)
    drain(server)
    assert server.data_to_send()[9:1537] == b"\xab" * 1528


def test_case_02_handshake_and_connect_in_one_write() -> None:
    """Case 2: C0+C1+C2+connect in one TCP write → connect is processed."""
    server = new_server()
    server.receive_data(b"\x03" + C1 + C2 + connect("live"))
    events = drain(server)
    assert events[0] == HandshakeCompleted(digest=False)
    assert isinstance(events[1], ConnectRequested)
    assert events[1].app == "live"
    assert len(events) == 2
    assert len(server.data_to_send()) == 1 + 2 * 1536


@pytest.mark.parametrize("scheme", [0, 1])
def test_case_03_ffmpeg_digest_c1(scheme: int) -> None:
    """Case 3: an FFmpeg-style C1 (nonzero version, HMAC digest) → handshake succeeds,
    the digest is noticed, and S2 still echoes C1."""
    plain = (1234).to_bytes(4, "big") + bytes((9, 0, 124, 2)) + bytes(range(256)) * 6
    c1 = hs.sign_packet(plain[: hs.PACKET_SIZE], scheme)
    assert hs.digest_scheme(c1) == scheme
    server = new_server()
    server.receive_data(b"\x03" + c1)
    assert drain(server) == []
    assert server.data_to_send()[1537:] == c1
    server.receive_data(C2)
    assert drain(server) == [HandshakeCompleted(digest=True)]


def test_case_03_nonzero_version_without_digest_is_plain() -> None:
    """Case 3: a C1 with version bytes but no valid digest is still accepted, as plain."""
    c1 = bytes(4) + b"\x09\x00\x7c\x02" + bytes(1528)
    server = new_server()
    server.receive_data(b"\x03" + c1 + C2)
    assert drain(server) == [HandshakeCompleted(digest=False)]


@pytest.mark.parametrize("c2", [C2, bytes(1536), b"\xff" * 1536])
def test_case_04_c2_not_matching_s1_is_accepted(c2: bytes) -> None:
    """Case 4: C2 content is never checked."""
    server = new_server(random=lambda n: b"\x5a" * n)
    server.receive_data(b"\x03" + C1)
    drain(server)
    assert server.data_to_send()[1:1537] != c2
    server.receive_data(c2)
    assert drain(server) == [HandshakeCompleted(digest=False)]


@pytest.mark.parametrize("sent", [0, 1, 700, 1537, 1537 + 800])
def test_case_05_truncated_handshake_then_eof(sent: int) -> None:
    """Case 5: handshake truncated, then EOF → clean close, parse state dropped."""
    server = new_server()
    if sent:
        server.receive_data((b"\x03" + C1 + C2)[:sent])
        assert drain(server) == []
    server.receive_data(b"")
    events = drain(server)
    assert len(events) == 1
    assert isinstance(events[0], ConnectionTerminated)
    assert events[0].cause == "closed_by_peer"
    assert not events[0].error
    assert server.closed
    assert server.unparsed_bytes == 0
    assert server.reader.partial_bytes == 0
    assert server.get_timer() is None
    assert drain(server) == []


def test_case_06_handshake_at_one_byte_per_second_closes_at_the_deadline() -> None:
    """Case 6: one byte per second → closed at the overall handshake deadline, not before,
    although bytes keep arriving."""
    clock = FakeClock(100.0)
    limits = Limits(handshake_timeout=10.0)
    server = new_server(clock=clock, limits=limits)
    assert server.get_timer() == 110.0
    stream = b"\x03" + C1 + C2
    events = []
    for second in range(1, 11):
        clock.now = 100.0 + second
        server.receive_data(stream[second - 1 : second])
        events += drain(server)
        if second < 10:
            server.handle_timer(clock.now - 0.001)
            server.handle_timer(clock.now)
            assert drain(server) == []
            assert server.get_timer() == 110.0  # received bytes do not push it back
    assert events == []
    server.handle_timer(109.999)
    assert drain(server) == []
    server.handle_timer(110.0)
    events = drain(server)
    assert len(events) == 1
    assert isinstance(events[0], ConnectionTerminated)
    assert events[0].cause == "handshake_timeout"
    assert events[0].error
    assert server.get_timer() is None
    server.handle_timer(200.0)
    assert drain(server) == []


def test_case_06_deadline_is_gone_once_the_handshake_is_done() -> None:
    """Case 6: after C2 the handshake deadline no longer applies (the later deadline for
    publishing does)."""
    clock = FakeClock(0.0)
    server = new_server(clock=clock, limits=Limits(handshake_timeout=10.0, publish_timeout=60.0))
    server.receive_data(b"\x03" + C1 + C2)
    drain(server)
    assert server.get_timer() == 60.0
    clock.now = 30.0
    server.handle_timer(30.0)
    assert drain(server) == []
    assert not server.closed


@pytest.mark.parametrize(
    ("c0", "words"),
    [
        (0x06, "RTMPE"),
        (0x16, "TLS"),
        (ord("G"), "HTTP"),
        (0x00, "0x00"),
    ],
)
def test_case_07_bad_c0_closes_without_s0(c0: int, words: str) -> None:
    """Case 7: C0 = 6, 0x16, 'G' or 0 → closed at once (the first byte is enough),
    nothing is sent."""
    server = new_server()
    server.receive_data(bytes((c0,)))
    events = drain(server)
    assert len(events) == 1
    assert isinstance(events[0], ConnectionTerminated)
    assert events[0].cause == "protocol_error"
    assert words in events[0].reason
    assert server.data_to_send() == b""
    server.receive_data(C1)
    assert drain(server) == []
    assert server.data_to_send() == b""


def test_case_07_bad_c0_with_the_rest_of_a_tls_hello() -> None:
    """Case 7: a whole TLS ClientHello in one read is refused the same way."""
    server = new_server()
    server.receive_data(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(500))
    events = drain(server)
    assert [type(e) for e in events] == [ConnectionTerminated]
    assert server.data_to_send() == b""


def test_s1_uses_the_default_random_source() -> None:
    """Without an injected source S1 is random: two servers differ."""
    replies = []
    for _ in range(2):
        server = new_server(random=os.urandom)
        server.receive_data(b"\x03" + C1)
        drain(server)
        replies.append(server.data_to_send()[9:1537])
    assert replies[0] != replies[1]
