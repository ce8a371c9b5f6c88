"""Resource limits: chunk size, message length, half-assembled bytes, AMF garbage, and a
garbage soak under tracemalloc (conformance cases 17, 18, 19, 26)."""

from __future__ import annotations

import random
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from ingest.rtmp.events import (
    NEED_DATA,
    ConnectionTerminated,
    ConnectRequested,
    Event,
    MediaReceived,
)
from ingest.rtmp.limits import Limits
from ingest.rtmp.server import ServerConnection, ServerState
from tests.ingest.rtmp.wire import (
    AUDIO,
    COMMAND_AMF0,
    VIDEO,
    FakeClock,
    chunked,
    command,
    connect,
    drain,
    fmt0,
    fmt3,
    handshake,
    media,
    new_server,
    set_chunk_size,
    to_state,
)

MiB = 1 << 20


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Yields a list that holds the peak traced allocation (bytes) once the block ends."""
    result: list[int] = []
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1] - base)
        if started:
            tracemalloc.stop()


def publishing(**kwargs: object) -> ServerConnection:
    server = new_server(**kwargs)
    to_state(server, ServerState.PUBLISHING)
    return server


def termination(events: list[Event]) -> ConnectionTerminated:
    assert events, "expected the connection to end"
    event = events[-1]
    assert isinstance(event, ConnectionTerminated)
    return event


# -- case 17: Set Chunk Size ------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0x80000000, 0x80000080, 0xFFFFFFFF, 1, 63])
@pytest.mark.parametrize("state", [ServerState.CONNECTING, ServerState.PUBLISHING])
def test_case_17_set_chunk_size_zero_or_msb_closes(value: int, state: ServerState) -> None:
    """Case 17: Set Chunk Size 0, with the MSB set (or below the minimum) → close."""
    server = new_server()
    to_state(server, state)
    server.receive_data(set_chunk_size(value))
    assert termination(drain(server)).cause == "protocol_error"
    assert server.closed


def test_case_17_huge_chunk_size_is_clamped_without_allocating() -> None:
    """Case 17: 0x7FFFFFFF → clamped to 0xFFFFFF; nothing is allocated by chunk size, so a
    small message after it (and a big one's first bytes) stay cheap."""
    server = publishing()
    with peak_memory() as peak:
        server.receive_data(set_chunk_size(0x7FFFFFFF))
        assert drain(server) == []
        assert server.reader.chunk_size == 0xFFFFFF
        server.receive_data(media(AUDIO, b"\xaf\x01" + bytes(100), 5, chunk_size=0xFFFFFF))
        assert drain(server) == [MediaReceived(1, AUDIO, 5, b"\xaf\x01" + bytes(100))]
        server.receive_data(fmt0(6, 0, 0xFFFFFF - 1, VIDEO, 1) + bytes(1000))
        assert drain(server) == []
    assert peak[0] < MiB
    assert not server.closed


def test_case_17_chunk_size_applies_to_the_very_next_chunk() -> None:
    server = publishing()
    payload = bytes(range(256)) * 4
    server.receive_data(set_chunk_size(1024) + media(VIDEO, payload, 0, chunk_size=1024))
    assert drain(server) == [MediaReceived(1, VIDEO, 0, payload)]


# -- case 18: declared length above the cap ---------------------------------------------


# The 24-bit length field cannot exceed the default 16 MiB cap, so publishing uses 1 MiB.
SMALL_PUBLISH_CAP = Limits(max_message_size=MiB)


@pytest.mark.parametrize(
    ("state", "length"),
    [
        (ServerState.CONNECTING, 64 * 1024 + 1),
        (ServerState.CONNECTED, 0xFFFFFF),
        (ServerState.PUBLISHING, MiB + 1),
    ],
)
def test_case_18_declared_length_above_the_cap_closes_on_the_header(
    state: ServerState, length: int
) -> None:
    """Case 18: a header declaring a message above the cap (small before publish, large
    after) → closed on the header alone, before any payload byte is sent."""
    server = new_server(limits=SMALL_PUBLISH_CAP)
    to_state(server, state)
    with peak_memory() as peak:
        server.receive_data(fmt0(6, 0, length, VIDEO, 1))
        event = termination(drain(server))
    assert event.cause == "protocol_error"
    assert "exceeds the cap" in event.reason
    assert peak[0] < MiB


@pytest.mark.parametrize(
    ("state", "length"),
    [(ServerState.CONNECTED, 64 * 1024), (ServerState.PUBLISHING, MiB), (None, 0xFFFFFF)],
)
def test_case_18_length_at_the_cap_is_accepted(state: ServerState | None, length: int) -> None:
    server = new_server(limits=SMALL_PUBLISH_CAP if state else Limits())
    state = state or ServerState.PUBLISHING
    to_state(server, state)
    server.receive_data(fmt0(6, 0, length, VIDEO, 1) + bytes(128))
    assert drain(server) == []
    assert server.reader.partial_bytes == 128


def test_case_18_cap_returns_to_small_after_unpublish() -> None:
    """After an unpublish the small cap is back, also for a fmt 3 reusing a big length."""
    server = publishing()
    big = bytes(100_000)
    server.receive_data(media(VIDEO, big, 0, chunk_size=128))
    assert [type(e) for e in drain(server)] == [MediaReceived]
    server.receive_data(command("FCUnpublish", 6, None, "key"))
    drain(server)
    assert server.state is ServerState.CONNECTED
    server.receive_data(fmt3(6))
    assert termination(drain(server)).cause == "protocol_error"


# -- case 19: total of half-assembled messages ------------------------------------------


def test_case_19_many_csids_half_sent_hit_the_total_cap() -> None:
    """Case 19: many csids each holding a half-sent large message → the total-buffer cap
    closes the connection, and the memory held stays near the cap."""
    limits = Limits(max_partial_bytes=100_000, max_message_size=200_000)
    server = publishing(limits=limits)
    server.receive_data(set_chunk_size(30_000))
    drain(server)
    with peak_memory() as peak:
        for i, csid in enumerate(range(10, 20)):
            server.receive_data(fmt0(csid, 0, 150_000, VIDEO, 1) + bytes(30_000))
            events = drain(server)
            if (i + 1) * 30_000 <= 100_000:
                assert events == []
                assert server.reader.partial_bytes == (i + 1) * 30_000
            else:
                event = termination(events)
                assert event.cause == "protocol_error"
                assert "half-assembled" in event.reason
                break
        else:
            pytest.fail("the cap never closed the connection")
    assert csid == 13
    assert server.reader.partial_bytes == 0
    assert peak[0] < 2 * MiB


def test_case_19_cap_counts_continuation_chunks_too() -> None:
    limits = Limits(max_partial_bytes=10_000, max_message_size=200_000)
    server = publishing(limits=limits)
    data = media(VIDEO, bytes(50_000), 0)
    server.receive_data(data[:9_000])
    assert drain(server) == []
    server.receive_data(data[9_000:20_000])
    assert termination(drain(server)).cause == "protocol_error"


def test_unparsed_bytes_cap_while_a_decision_is_pending() -> None:
    """Bytes piling up while the publish decision is pending are bounded too."""
    server = new_server(limits=Limits(max_unparsed_bytes=50_000))
    to_state(server, ServerState.PUBLISH_PENDING)
    server.receive_data(bytes(40_000))
    assert drain(server) == []
    server.receive_data(bytes(20_000))
    assert termination(drain(server)).cause == "protocol_error"


def test_chunk_stream_count_cap() -> None:
    server = publishing(limits=Limits(max_chunk_streams=8))
    data = b"".join(media(AUDIO, b"x", 0, csid=csid) for csid in range(10, 20))
    server.receive_data(data)
    events = drain(server)
    assert termination(events).cause == "protocol_error"
    # csids 3 and 5 carried the setup commands; 6 more fit.
    assert [type(e) for e in events[:-1]] == [MediaReceived] * 6


def test_trickled_big_chunk_costs_linear_work() -> None:
    """A 16 MiB message in one chunk arriving 1 KiB at a time is not re-copied per read."""
    server = publishing()
    server.receive_data(set_chunk_size(0xFFFFFF))
    drain(server)
    data = media(VIDEO, bytes(16 * MiB - 1), 0, chunk_size=0xFFFFFF)
    started = time.perf_counter()
    events = []
    for start in range(0, len(data), 1024):
        server.receive_data(data[start : start + 1024])
        events += drain(server)
    assert [type(e) for e in events] == [MediaReceived]
    assert time.perf_counter() - started < 2.0


# -- case 26: AMF garbage ---------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b"\x03" + b"\x00\x01a\x03" * depth + b"\x00\x00\x09" * (depth + 1)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1) + b"\x42",  # bad marker
        b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1) + b"\x02\xff\xffab",
        b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1) + b"\x0c\x7f\xff\xff\xffab",
        b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1) + b"\x0a\xff\xff\xff\xff",
        b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1) + _nested(40),
        b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1) + b"\x03\x00\x03app\x02\x00",
        b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1) + b"\x07\x00\x01",
        b"\x02\x00\x07connect",  # no transaction id
        b"\x00" + struct.pack(">d", 1),  # no name
        b"\x02\x00\x09conn",  # name overruns
        b"",
    ],
    ids=[
        "bad-marker",
        "string-overrun",
        "long-string-overrun",
        "array-count",
        "deep-nesting",
        "truncated-object",
        "reference",
        "no-txn",
        "no-name",
        "name-overrun",
        "empty",
    ],
)
def test_case_26_amf_garbage_in_connect_closes_only_that_connection(payload: bytes) -> None:
    """Case 26: AMF garbage (bad marker, string overrun, deep nesting...) → close; another
    connection in the same process goes on."""
    bystander = publishing()
    server = new_server()
    handshake(server)
    server.receive_data(chunked(3, COMMAND_AMF0, payload))
    assert termination(drain(server)).cause == "protocol_error"
    bystander.receive_data(media(AUDIO, b"\xaf\x01", 0))
    assert drain(bystander) == [MediaReceived(1, AUDIO, 0, b"\xaf\x01")]


def test_case_26_amf_garbage_after_connect_closes() -> None:
    server = new_server()
    to_state(server, ServerState.CONNECTED)
    server.receive_data(chunked(3, COMMAND_AMF0, b"\x02\x00\x0ccreateStream\x00\x40"))
    assert termination(drain(server)).cause == "protocol_error"


def test_case_26_too_many_amf_items() -> None:
    server = new_server(limits=Limits(max_amf_items=50))
    handshake(server)
    props = {"app": "live", "tcUrl": "rtmp://h/live"} | {f"k{i}": float(i) for i in range(60)}
    server.receive_data(command("connect", 1, props))
    assert termination(drain(server)).cause == "protocol_error"


# -- the garbage soak -------------------------------------------------------------------


def _soak(
    make: Callable[[], ServerConnection], total: int, seed: int
) -> tuple[dict[str, int], int, int]:
    rng = random.Random(seed)
    causes: dict[str, int] = {}
    connections = 0
    server: ServerConnection | None = None
    with peak_memory() as peak:
        for _ in range(0, total, 64 * 1024):
            if server is None:
                server = make()
                connections += 1
            server.receive_data(rng.randbytes(64 * 1024))
            while (event := server.next_event()) is not NEED_DATA:
                assert isinstance(event, ConnectionTerminated | MediaReceived), event
                if isinstance(event, ConnectionTerminated):
                    causes[event.cause] = causes.get(event.cause, 0) + 1
            if server.closed:
                server = None
    return causes, connections, peak[0]


def _connected() -> ServerConnection:
    server = new_server()
    handshake(server)
    server.receive_data(connect())
    [event] = drain(server)
    assert isinstance(event, ConnectRequested)
    server.accept_connect()
    server.data_to_send()
    return server


def test_garbage_soak_after_connect() -> None:
    """20 MB of random bytes after a valid handshake and connect, in 64 KiB reads, into
    fresh connections: every connection ends with a protocol error (or still waits for
    data), nothing raises, and memory stays bounded."""
    causes, connections, peak = _soak(_connected, 20 * 1000 * 1000, seed=1)
    assert set(causes) <= {"protocol_error"}
    assert connections - 1 <= sum(causes.values()) <= connections
    assert connections > 1
    assert peak < 40 * MiB


def test_garbage_soak_while_publishing_with_small_caps() -> None:
    """The same soak against publishing connections with small caps: a tighter bound."""
    limits = Limits(
        max_message_size=256 * 1024,
        max_partial_bytes=512 * 1024,
        max_unparsed_bytes=300 * 1024,
    )

    def make() -> ServerConnection:
        return publishing(limits=limits)

    causes, connections, peak = _soak(make, 5 * 1000 * 1000, seed=2)
    assert set(causes) <= {"protocol_error"}
    assert connections - 1 <= sum(causes.values()) <= connections
    assert peak < 4 * MiB


# -- the deadline for publishing --------------------------------------------------------


def test_trickled_connect_is_closed_at_the_publish_deadline() -> None:
    """After the handshake, a connect command trickled a byte a second never lets the idle
    timeout fire; the connection is closed when the total time to publish runs out."""
    clock = FakeClock(0.0)
    limits = Limits(handshake_timeout=10.0, publish_timeout=20.0)
    server = new_server(clock=clock, limits=limits, idle_timeout=5.0)
    handshake(server)
    assert server.get_timer() == 5.0  # the idle timeout comes first, then the deadline
    trickle = connect()
    for second in range(1, 20):
        clock.now = float(second)
        server.receive_data(trickle[second - 1 : second])
        server.handle_timer(clock.now)
        assert drain(server) == []
        assert server.get_timer() == min(second + 5.0, 20.0)
    server.handle_timer(19.999)
    assert drain(server) == []
    server.handle_timer(20.0)
    event = termination(drain(server))
    assert (event.cause, event.error) == ("publish_timeout", True)
    assert "20s" in event.reason
    assert server.get_timer() is None


@pytest.mark.parametrize(
    "state", [ServerState.CONNECT_PENDING, ServerState.CONNECTED, ServerState.PUBLISH_PENDING]
)
def test_every_state_before_publishing_is_under_the_deadline(state: ServerState) -> None:
    """Waiting for our own decision (connect, the key check) counts too."""
    clock = FakeClock(0.0)
    server = new_server(clock=clock, limits=Limits(publish_timeout=20.0))
    to_state(server, state)
    assert server.get_timer() == 20.0
    server.handle_timer(20.0)
    assert termination(drain(server)).cause == "publish_timeout"


def test_the_publish_deadline_is_gone_once_publishing() -> None:
    clock = FakeClock(0.0)
    server = new_server(clock=clock, limits=Limits(publish_timeout=20.0))
    to_state(server, ServerState.PUBLISHING)
    assert server.get_timer() is None
    server.handle_timer(1000.0)
    assert drain(server) == []
    # An unpublish does not bring it back: the connection has published.
    server.receive_data(command("deleteStream", 7, None, 1.0))
    drain(server)
    assert server.state is ServerState.CONNECTED
    server.handle_timer(2000.0)
    assert drain(server) == [] and not server.closed


def test_publish_deadline_before_the_handshake_deadline_wins() -> None:
    clock = FakeClock(0.0)
    server = new_server(clock=clock, limits=Limits(handshake_timeout=10.0, publish_timeout=4.0))
    assert server.get_timer() == 4.0
    server.handle_timer(4.0)
    assert termination(drain(server)).cause == "publish_timeout"
