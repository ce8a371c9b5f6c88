"""Property tests of the server core on a realistic publisher byte stream: read boundaries
never change the events, and mutated streams never raise or use unbounded memory."""

from __future__ import annotations

import functools
import random
import tracemalloc
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.rtmp.client import ClientConnection, ClientState
from ingest.rtmp.events import (
    ConnectionTerminated,
    ConnectRequested,
    Event,
    HandshakeCompleted,
    MediaReceived,
    MetadataReceived,
    PublishRequested,
)
from ingest.rtmp.limits import Limits
from tests.ingest.rtmp.wire import (
    AUDIO,
    VIDEO,
    FakeClock,
    drain,
    drain_accepting,
    fmt1,
    fmt3,
    new_server,
    zeros,
)

CHUNK_SIZES = (128, 4096, 60000)
HANDSHAKE_SIZE = 1 + 2 * 1536
MiB = 1 << 20


@dataclass(frozen=True)
class Stream:
    data: bytes
    media: tuple[MediaReceived, ...]


def _chunks_after(header: bytes, csid: int, payload: bytes, chunk_size: int) -> bytes:
    """A message whose first chunk has ``header`` (fmt 1) and fmt 3 continuations."""
    out = bytearray(header + payload[:chunk_size])
    for start in range(chunk_size, len(payload), chunk_size):
        out += fmt3(csid) + payload[start : start + chunk_size]
    return bytes(out)


@functools.cache
def publisher_stream(chunk_size: int, seed: int) -> Stream:
    """What a publisher sends: C0+C1, C2, Set Chunk Size, connect, releaseStream, FCPublish,
    createStream, publish, @setDataFrame, then ~30 interleaved audio/video messages (0 to
    20000 bytes, some at timestamps of 0xFFFFFF and above, some sent with fmt 1/3 headers)."""
    rng = random.Random(seed)
    client = ClientConnection(
        app="live", stream_name="key", chunk_size=chunk_size, random=zeros, clock=FakeClock()
    )
    server = new_server()
    sent = bytearray()
    while True:
        data = client.data_to_send()
        if not data:
            break
        sent += data
        server.receive_data(data)
        drain_accepting(server)
        client.receive_data(server.data_to_send())
        drain(client)
    assert client.state is ClientState.PUBLISHING
    client.send_metadata({"width": 1280.0, "height": 720.0, "videocodecid": 7.0})
    sent += client.data_to_send()

    media: list[MediaReceived] = []
    clock = {AUDIO: rng.choice((0, 1000, 0xFFFFFF - 300)), VIDEO: 0}
    clock[VIDEO] = clock[AUDIO]
    seen = {AUDIO: False, VIDEO: False}
    for index in range(30):
        type_id = rng.choice((AUDIO, VIDEO))
        size = rng.randrange(20001) if rng.random() < 0.7 else rng.choice((0, 1, 128, 129))
        if type_id == AUDIO and index % 7 == 3:
            size = 0
        payload = rng.randbytes(size)
        delta = rng.choice((0, 21, 23, 33, 34, 40))
        csid = 4 if type_id == AUDIO else 6
        if index == 20:
            delta = 0x01000000  # jump past 0xFFFFFF with an extended delta
        if seen[type_id] and rng.random() < 0.3:
            # fmt 1 (delta, length, type) on the csid the client's fmt 0 headers set up
            sent += _chunks_after(fmt1(csid, delta, size, type_id), csid, payload, chunk_size)
            clock[type_id] += delta
        else:
            clock[type_id] += delta
            if type_id == AUDIO:
                client.send_audio(clock[type_id], payload)
            else:
                client.send_video(clock[type_id], payload)
            sent += client.data_to_send()
            seen[type_id] = True
        media.append(MediaReceived(1, type_id, clock[type_id] & 0xFFFFFFFF, payload))
    assert any(m.timestamp >= 0xFFFFFF for m in media)
    return Stream(bytes(sent), tuple(media))


def feed(data: bytes, cuts: list[int], limits: Limits | None = None) -> list[Event]:
    server = new_server(limits=limits or Limits())
    events: list[Event] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut > start:
            server.receive_data(data[start:cut])
            events += drain_accepting(server)
            start = cut
    return events


def check_events(events: list[Event], stream: Stream) -> None:
    assert isinstance(events[0], HandshakeCompleted)
    assert isinstance(events[1], ConnectRequested)
    assert isinstance(events[2], PublishRequested)
    assert isinstance(events[3], MetadataReceived)
    assert events[3].values["width"] == 1280.0
    assert tuple(events[4:]) == stream.media


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_whole_stream_gives_the_expected_events(chunk_size: int) -> None:
    stream = publisher_stream(chunk_size, 0)
    check_events(feed(stream.data, []), stream)


@given(
    chunk_size=st.sampled_from(CHUNK_SIZES),
    seed=st.integers(0, 3),
    points=st.lists(st.floats(0, 1), max_size=60),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_split_gives_the_same_events(chunk_size: int, seed: int, points: list[float]) -> None:
    """Any split of the stream into reads yields the events of feeding it whole."""
    stream = publisher_stream(chunk_size, seed)
    cuts = [int(p * len(stream.data)) for p in points]
    assert feed(stream.data, cuts) == feed(stream.data, [])


@given(
    chunk_size=st.sampled_from(CHUNK_SIZES),
    seed=st.integers(0, 3),
    cuts=st.lists(st.integers(0, HANDSHAKE_SIZE + 2000), max_size=30),
)
@settings(max_examples=100, deadline=None)
def test_splits_around_handshake_and_commands(chunk_size: int, seed: int, cuts: list[int]) -> None:
    """Splits concentrated where the handshake ends and the commands begin."""
    stream = publisher_stream(chunk_size, seed)
    check_events(feed(stream.data, cuts), stream)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_one_byte_at_a_time(chunk_size: int) -> None:
    stream = publisher_stream(chunk_size, 1)
    check_events(feed(stream.data, list(range(len(stream.data)))), stream)


# -- mutations --------------------------------------------------------------------------

SMALL_LIMITS = Limits(
    max_message_size_before_publish=16 * 1024,
    max_message_size=256 * 1024,
    max_partial_bytes=512 * 1024,
    max_unparsed_bytes=1 * MiB,
)

mutation = st.tuples(
    st.sampled_from(("flip", "insert", "delete", "overwrite")),
    st.floats(0, 1, exclude_max=True),
    st.integers(0, 255),
)


#: Where mutations land: the handshake, the command messages right after it, anywhere after.
REGIONS = {
    "handshake": (0, HANDSHAKE_SIZE),
    "commands": (HANDSHAKE_SIZE, HANDSHAKE_SIZE + 1200),
    "after-handshake": (HANDSHAKE_SIZE, None),
}


def mutate(data: bytes, ops: list[tuple[str, float, int]], region: str) -> bytes:
    buf = bytearray(data)
    for op, where, value in ops:
        start, end = REGIONS[region]
        end = len(buf) if end is None else min(end, len(buf))
        pos = start + int(where * (end - start))
        if op == "flip":
            buf[pos] ^= 1 << (value % 8)
        elif op == "insert":
            buf[pos:pos] = bytes((value,)) * (1 + value % 5)
        elif op == "delete":
            del buf[pos : pos + 1 + value % 7]
        else:
            buf[pos : pos + 4] = bytes((value,)) * 4
    return bytes(buf)


def run_mutated(data: bytes, read_size: int) -> tuple[list[str], int]:
    """Feed ``data`` then EOF; return the termination causes and the peak allocation."""
    causes: list[str] = []
    tracemalloc.start()
    try:
        server = new_server(limits=SMALL_LIMITS)
        for start in range(0, len(data), read_size):
            server.receive_data(data[start : start + read_size])
            for event in drain_accepting(server):
                assert isinstance(event, Event)
                if isinstance(event, ConnectionTerminated):
                    causes.append(event.cause)
        server.receive_data(b"")
        for event in drain_accepting(server):
            if isinstance(event, ConnectionTerminated):
                causes.append(event.cause)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return causes, peak


@given(
    chunk_size=st.sampled_from(CHUNK_SIZES),
    seed=st.integers(0, 3),
    ops=st.lists(mutation, min_size=1, max_size=8),
    region=st.sampled_from(sorted(REGIONS)),
    read_size=st.sampled_from((1000, 4096, 65536)),
)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_stream_never_raises_and_stays_bounded(
    chunk_size: int,
    seed: int,
    ops: list[tuple[str, float, int]],
    region: str,
    read_size: int,
) -> None:
    """Random flips, inserts, deletes and overwrites, inside the handshake, among the
    commands or anywhere after: every peer error becomes ConnectionTerminated, and memory
    stays within a bound set by the (small) caps."""
    stream = publisher_stream(chunk_size, seed)
    data = mutate(stream.data, ops, region)
    causes, peak = run_mutated(data, read_size)
    assert len(causes) == 1
    assert causes[0] in ("protocol_error", "closed_by_peer")
    assert peak < 4 * MiB


def test_unmutated_stream_ends_cleanly_at_eof() -> None:
    stream = publisher_stream(4096, 0)
    causes, peak = run_mutated(stream.data, 65536)
    assert causes == ["closed_by_peer"]
    assert peak < 4 * MiB
