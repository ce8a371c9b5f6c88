"""Chunk stream: ChunkReader on literal bytes, ChunkWriter round trips, and the chunk-level
conformance cases (8-15, 20, 23) on the reader and on a publishing server."""

from __future__ import annotations

import pytest

from ingest.rtmp.chunks import ChunkReader, ChunkWriter, Message
from ingest.rtmp.errors import RemoteProtocolError
from ingest.rtmp.events import ConnectionTerminated, ConnectRequested, MediaReceived
from ingest.rtmp.limits import Limits
from ingest.rtmp.server import ServerConnection, ServerState
from tests.ingest.rtmp.wire import (
    AUDIO,
    VIDEO,
    abort,
    basic_header,
    chunked,
    connect,
    drain,
    fmt0,
    fmt1,
    fmt2,
    fmt3,
    handshake,
    media,
    new_server,
    set_chunk_size,
    to_state,
    u32,
)


def reader(chunk_size: int = 128, **limits: int) -> ChunkReader:
    r = ChunkReader(Limits(**limits))
    r.chunk_size = chunk_size
    return r


def read_all(data: bytes, chunk_size: int = 128, **limits: int) -> list[Message]:
    r = reader(chunk_size, **limits)
    r.feed(data)
    out = []
    while (msg := r.next_message()) is not None:
        out.append(msg)
    assert r.unparsed_bytes == 0
    assert r.partial_bytes == 0
    return out


def read_bytewise(data: bytes, chunk_size: int = 128) -> list[Message]:
    r = reader(chunk_size)
    out = []
    for i in range(len(data)):
        r.feed(data[i : i + 1])
        while (msg := r.next_message()) is not None:
            out.append(msg)
    assert r.unparsed_bytes == 0
    return out


def publishing(**kwargs: object) -> ServerConnection:
    server = new_server(**kwargs)
    to_state(server, ServerState.PUBLISHING)
    return server


def terminated(events: list[object], cause: str = "protocol_error") -> bool:
    return (
        len(events) >= 1
        and isinstance(events[-1], ConnectionTerminated)
        and events[-1].cause == cause
    )


# -- headers on literal bytes -----------------------------------------------------------


def test_fmt0_literal() -> None:
    data = (
        b"\x04"  # fmt 0, csid 4
        b"\x00\x10\x00"  # timestamp 4096
        b"\x00\x00\x03"  # length 3
        b"\x08"  # audio
        b"\x01\x02\x03\x04"  # message stream id, little-endian
        b"abc"
    )
    assert read_all(data) == [Message(4, 8, 0x04030201, 4096, b"abc")]


def test_fmt1_keeps_stream_id_and_adds_delta() -> None:
    data = (
        b"\x06\x00\x00\x64\x00\x00\x02\x09\x01\x00\x00\x00xy"  # fmt 0: ts 100, video
        b"\x46\x00\x00\x21\x00\x00\x01\x08z"  # fmt 1: delta 33, length 1, audio
    )
    assert read_all(data) == [
        Message(6, 9, 1, 100, b"xy"),
        Message(6, 8, 1, 133, b"z"),
    ]


def test_fmt2_keeps_length_and_type() -> None:
    data = (
        b"\x06\x00\x00\x0a\x00\x00\x02\x09\x01\x00\x00\x00ab"
        b"\x86\x00\x00\x05cd"  # fmt 2: delta 5
        b"\x86\x00\x00\x07ef"  # fmt 2: delta 7
    )
    assert [(m.timestamp, m.payload, m.type_id, m.stream_id) for m in read_all(data)] == [
        (10, b"ab", 9, 1),
        (15, b"cd", 9, 1),
        (22, b"ef", 9, 1),
    ]


def test_fmt3_new_message_after_fmt1_repeats_delta() -> None:
    data = (
        fmt0(4, 1000, 2, AUDIO, 1)
        + b"a0"
        + fmt1(4, 23, 2, AUDIO)
        + b"a1"
        + b"\xc4a2"  # fmt 3: a new message, same delta
        + b"\xc4a3"
    )
    assert [m.timestamp for m in read_all(data)] == [1000, 1023, 1046, 1069]


def test_case_08_fmt0_fmt2_fmt3_timestamps() -> None:
    """Case 8: fmt 0 → fmt 2 → fmt 3 (new message) → T, T+d, T+2d."""
    t, d = 5000, 40
    data = fmt0(6, t, 1, VIDEO, 1) + b"0" + fmt2(6, d) + b"1" + fmt3(6) + b"2" + fmt3(6) + b"3"
    assert [m.timestamp for m in read_all(data)] == [t, t + d, t + 2 * d, t + 3 * d]


@pytest.mark.parametrize("t", [0, 1, 33, 0xABCDEF, 0xFFFFFE])
def test_case_09_fmt3_after_fmt0_doubles_timestamp(t: int) -> None:
    """Case 9: fmt 3 directly after fmt 0 at T → 2T (FFmpeg/librtmp rule)."""
    data = fmt0(3, t, 1, AUDIO, 1) + b"x" + fmt3(3) + b"y"
    assert [m.timestamp for m in read_all(data)] == [t, 2 * t]


def test_case_09_fmt3_after_extended_fmt0_doubles_timestamp() -> None:
    """Case 9 with an extended fmt 0 timestamp: the fmt 3 carries the 4 bytes again."""
    t = 0x01000000
    data = fmt0(3, t, 1, AUDIO, 1) + b"x" + fmt3(3, t) + b"y"
    assert [m.timestamp for m in read_all(data)] == [t, 2 * t]


@pytest.mark.parametrize(
    ("csid", "basic"),
    [
        (64, b"\x00\x00"),
        (65, b"\x00\x01"),
        (319, b"\x00\xff"),
        (320, b"\x01\x00\x01"),
        (321, b"\x01\x01\x01"),
        (65599, b"\x01\xff\xff"),
    ],
)
def test_case_10_two_and_three_byte_csids(csid: int, basic: bytes) -> None:
    """Case 10: csids 64, 319, 320, 65599 decode (second byte of a 3-byte id is low)."""
    assert basic_header(0, csid) == basic
    payload = bytes(range(200))
    data = (
        basic
        + b"\x00\x00\x07\x00\x00\xc8\x09\x01\x00\x00\x00"  # ts 7, length 200, video
        + payload[:128]
        + bytes((0xC0 | basic[0],))
        + basic[1:]  # fmt 3 continuation, same csid
        + payload[128:]
    )
    assert read_all(data) == [Message(csid, 9, 1, 7, payload)]
    assert read_bytewise(data) == [Message(csid, 9, 1, 7, payload)]


def test_case_10_csid_64_in_the_three_byte_form_is_the_same_stream() -> None:
    """Case 10: csid 64 written as 3 bytes (0x01 0x00 0x00) continues the 2-byte one."""
    data = b"\x01\x00\x00" + fmt0(64, 9, 2, AUDIO, 1)[2:] + b"ab" + b"\xc0\x00" + b"cd"
    assert [(m.csid, m.timestamp, m.payload) for m in read_all(data)] == [
        (64, 9, b"ab"),
        (64, 18, b"cd"),
    ]


def test_case_11_interleaved_audio_and_video_on_different_csids() -> None:
    """Case 11: chunks of an audio and a video message interleaved → both reassembled."""
    audio = bytes(range(256)) + b"A" * 44  # 300 bytes: 3 chunks
    video = b"V" * 200 + bytes(range(100))  # 300 bytes: 3 chunks
    data = (
        fmt0(4, 20, 300, AUDIO, 1)
        + audio[:128]
        + fmt0(6, 0, 300, VIDEO, 1)
        + video[:128]
        + b"\xc4"
        + audio[128:256]
        + b"\xc6"
        + video[128:256]
        + b"\xc6"
        + video[256:]
        + b"\xc4"
        + audio[256:]
    )
    expected = [Message(6, VIDEO, 1, 0, video), Message(4, AUDIO, 1, 20, audio)]
    assert read_all(data) == expected
    assert read_bytewise(data) == expected

    server = publishing()
    server.receive_data(data)
    assert drain(server) == [
        MediaReceived(1, VIDEO, 0, video),
        MediaReceived(1, AUDIO, 20, audio),
    ]


@pytest.mark.parametrize(
    "chunk",
    [
        b"\x44\x00\x00\x00\x00\x00\x01\x08a",  # fmt 1
        b"\x84\x00\x00\x00a",  # fmt 2
        b"\xc4a",  # fmt 3
        b"\x40\x05\x00\x00\x00\x00\x00\x01\x08a",  # fmt 1 on csid 69
    ],
)
def test_case_12_fmt123_on_unseen_csid_is_a_protocol_error(chunk: bytes) -> None:
    """Case 12: fmt 1/2/3 on a never-seen csid → protocol error, close."""
    r = reader()
    r.feed(chunk)
    with pytest.raises(RemoteProtocolError, match="no prior header"):
        r.next_message()

    server = publishing()
    server.receive_data(chunk)
    events = drain(server)
    assert terminated(events)
    assert server.closed


@pytest.mark.parametrize(
    "interrupt",
    [
        fmt0(6, 0, 10, VIDEO, 1),
        fmt1(6, 0, 10, VIDEO),
        fmt2(6, 0),
    ],
)
def test_case_13_new_header_while_half_assembled(interrupt: bytes) -> None:
    """Case 13: fmt 0 (or 1, 2) on a csid whose message is half-assembled → close."""
    data = fmt0(6, 0, 300, VIDEO, 1) + bytes(128) + interrupt + bytes(10)
    r = reader()
    r.feed(data)
    with pytest.raises(RemoteProtocolError, match="interrupts"):
        r.next_message()

    server = publishing()
    server.receive_data(data)
    assert terminated(drain(server))


@pytest.mark.parametrize("repeat", [True, False])
@pytest.mark.parametrize("ts", [0xFFFFFF, 0x01000000, 0xFFFFFFFF])
def test_case_14_extended_timestamp_on_continuation_chunks(repeat: bool, ts: int) -> None:
    """Case 14: a 3-chunk message with an extended timestamp; continuation chunks with
    (FFmpeg, OBS) and without (some librtmp writers) the repeated 4 bytes both parse."""
    payload = bytes(range(256)) + bytes(44)
    ext = u32(ts)
    data = (
        b"\x06\xff\xff\xff\x00\x01\x2c\x09\x01\x00\x00\x00"
        + ext
        + payload[:128]
        + b"\xc6"
        + (ext if repeat else b"")
        + payload[128:256]
        + b"\xc6"
        + (ext if repeat else b"")
        + payload[256:]
    )
    assert data == chunked(6, VIDEO, payload, timestamp=ts, stream_id=1, repeat_extended=repeat)
    expected = [Message(6, VIDEO, 1, ts, payload)]
    assert read_all(data) == expected
    assert read_bytewise(data) == expected


def test_case_14_mixed_repetition_within_one_message() -> None:
    """Case 14: one continuation repeats the extended timestamp, the next does not."""
    ts = 0x12345678
    payload = b"\x01" * 300
    data = (
        fmt0(6, ts, 300, VIDEO, 1)
        + payload[:128]
        + fmt3(6, ts)
        + payload[128:256]
        + fmt3(6)
        + payload[256:]
    )
    assert read_all(data) == [Message(6, VIDEO, 1, ts, payload)]


def test_case_14_extended_timestamp_on_fmt1_and_next_fmt3() -> None:
    """Case 14 (fmt 1 / fmt 3): an extended delta, repeated by the fmt 3 new message."""
    delta = 0x01000000
    data = (
        fmt0(4, 10, 1, AUDIO, 1)
        + b"a"
        + fmt1(4, delta, 1, AUDIO)
        + b"b"
        + fmt3(4, delta)
        + b"c"
        + fmt2(4, 5)
        + b"d"
        + fmt3(4)
        + b"e"
    )
    assert fmt1(4, delta, 1, AUDIO) == b"\x44\xff\xff\xff\x00\x00\x01\x08\x01\x00\x00\x00"
    assert [m.timestamp for m in read_all(data)] == [
        10,
        10 + delta,
        10 + 2 * delta,
        10 + 2 * delta + 5,
        10 + 2 * delta + 10,
    ]


def test_case_15_crossing_0xffffff_via_fmt1_deltas() -> None:
    """Case 15: timestamps crossing 0xFFFFFF through small fmt 1 / fmt 3 deltas stay
    monotonic (no extended field is needed for a small delta)."""
    start = 0xFFFFFF - 50
    data = bytearray(fmt0(6, start, 2, VIDEO, 1) + b"v0")
    for _ in range(4):
        data += fmt1(6, 20, 3, VIDEO) + b"v1!"
        data += fmt3(6) + b"v2!"
    timestamps = [m.timestamp for m in read_all(bytes(data))]
    assert timestamps == [start + 20 * i for i in range(9)]
    assert timestamps[0] < 0xFFFFFF < timestamps[-1]
    assert timestamps == sorted(timestamps)


def test_case_15_crossing_0xffffff_on_a_publishing_server() -> None:
    """Case 15 end to end: MediaReceived timestamps cross 0xFFFFFF monotonically, then
    continue from a fmt 0 with an extended absolute timestamp."""
    server = publishing()
    start = 0xFFFFFF - 40
    data = fmt0(6, start, 300, VIDEO, 1) + bytes(128) + b"\xc6" + bytes(128) + b"\xc6" + bytes(44)
    for _ in range(3):
        data += fmt1(6, 33, 200, VIDEO) + bytes(128) + b"\xc6" + bytes(72)
    data += media(VIDEO, bytes(300), 0xFFFFFF + 200)
    server.receive_data(data)
    events = drain(server)
    stamps = [e.timestamp for e in events if isinstance(e, MediaReceived)]
    assert stamps == [start, start + 33, start + 66, start + 99, 0xFFFFFF + 200]


def test_zero_length_messages() -> None:
    """Zero-length messages (legal for audio) on fmt 0, 1, 2 and 3."""
    data = (
        fmt0(4, 10, 0, AUDIO, 1)
        + fmt3(4)
        + fmt1(4, 5, 0, AUDIO)
        + fmt2(4, 1)
        + fmt1(4, 1, 2, AUDIO)
        + b"ok"
        + fmt0(5, 0xFFFFFF, 0, AUDIO, 1)
        + fmt3(5, 0xFFFFFF)
    )
    assert [(m.csid, m.timestamp, m.payload) for m in read_all(data)] == [
        (4, 10, b""),
        (4, 20, b""),
        (4, 25, b""),
        (4, 26, b""),
        (4, 27, b"ok"),
        (5, 0xFFFFFF, b""),
        (5, 2 * 0xFFFFFF, b""),
    ]
    assert read_bytewise(data) == read_all(data)


# -- the strided fast path --------------------------------------------------------------


def test_contiguous_continuations_come_out_in_one_call() -> None:
    """A message of many uninterleaved continuation chunks: one next_message call."""
    payload = bytes(i % 253 for i in range(128 * 40 + 17))
    data = chunked(6, VIDEO, payload, timestamp=7, stream_id=1)
    r = reader()
    r.feed(data)
    assert r.next_message() == Message(6, VIDEO, 1, 7, payload)
    assert r.next_message() is None
    assert r.partial_bytes == 0


@pytest.mark.parametrize("size", [128 * 10, 128 * 10 + 1, 128 * 10 - 1])
def test_fast_path_partially_received(size: int) -> None:
    """Contiguous continuations arriving in pieces cut everywhere (mid-header, mid-payload,
    at chunk boundaries) reassemble the same message."""
    payload = bytes(i % 249 for i in range(size))
    data = chunked(6, VIDEO, payload, timestamp=3, stream_id=1) + chunked(4, AUDIO, b"end")
    for cut in (1, 12, 129, 140, 130 * 3 + 5, 129 * 4, len(data) - 9, len(data) - 1):
        r = reader()
        out = []
        for piece in (data[:cut], data[cut:]):
            r.feed(piece)
            while (msg := r.next_message()) is not None:
                out.append(msg)
        assert out == [Message(6, VIDEO, 1, 3, payload), Message(4, AUDIO, 0, 0, b"end")], cut
        assert r.partial_bytes == 0


def test_fast_path_interleaved_with_another_csid_mid_message() -> None:
    """Another csid's chunk inside a run of continuations: the fast path stops there and
    both messages come out whole."""
    video = bytes(i % 241 for i in range(128 * 6))
    audio = b"\xaf\x01" + bytes(200)
    vchunks = [video[i : i + 128] for i in range(0, len(video), 128)]
    data = (
        fmt0(6, 40, len(video), VIDEO, 1)
        + vchunks[0]
        + b"\xc6"
        + vchunks[1]
        + b"\xc6"
        + vchunks[2]
        + fmt0(4, 41, len(audio), AUDIO, 1)
        + audio[:128]
        + b"\xc6"
        + vchunks[3]
        + b"\xc4"
        + audio[128:]
        + b"\xc6"
        + vchunks[4]
        + b"\xc6"
        + vchunks[5]
    )
    expected = [Message(4, AUDIO, 1, 41, audio), Message(6, VIDEO, 1, 40, video)]
    assert read_all(data) == expected
    assert read_bytewise(data) == expected


def test_fast_path_with_a_payload_byte_that_looks_like_a_header() -> None:
    """Payload bytes equal to the continuation header do not confuse the strided check."""
    payload = b"\xc6" * (128 * 5 + 3)
    data = chunked(6, VIDEO, payload, stream_id=1)
    assert read_all(data) == [Message(6, VIDEO, 1, 0, payload)]


def test_fast_path_stops_at_a_continuation_of_another_csid() -> None:
    """Continuation headers of two csids alternating: the strided check rejects the run."""
    a = b"a" * 256
    b = b"b" * 256
    data = (
        fmt0(4, 0, 256, AUDIO, 1)
        + a[:128]
        + fmt0(6, 0, 256, VIDEO, 1)
        + b[:128]
        + b"\xc4"
        + a[128:]
        + b"\xc6"
        + b[128:]
    )
    assert read_all(data) == [Message(4, AUDIO, 1, 0, a), Message(6, VIDEO, 1, 0, b)]


def test_large_chunk_size_message_in_one_chunk() -> None:
    payload = bytes(range(256)) * 300
    data = chunked(6, VIDEO, payload, chunk_size=1 << 20, stream_id=1)
    assert read_all(data, chunk_size=1 << 20, max_message_size_before_publish=1 << 20) == [
        Message(6, VIDEO, 1, 0, payload)
    ]


# -- abort, unknown types, chunk size ---------------------------------------------------


def test_case_20_abort_discards_the_partial_message() -> None:
    """Case 20: Abort on a csid with a partial message → discarded; the next message on that
    csid parses."""
    r = reader()
    r.feed(fmt0(6, 0, 300, VIDEO, 1) + bytes(128))
    assert r.next_message() is None
    assert r.partial_bytes == 128
    r.abort(6)
    assert r.partial_bytes == 0
    r.abort(6)  # nothing left: no-op
    r.abort(99)  # unknown csid: no-op
    r.feed(fmt0(6, 50, 3, VIDEO, 1) + b"new")
    assert r.next_message() == Message(6, VIDEO, 1, 50, b"new")


def test_case_20_abort_on_a_publishing_server() -> None:
    """Case 20 end to end: the Abort message arrives on csid 2 between chunks."""
    server = publishing()
    server.receive_data(
        fmt0(6, 0, 300, VIDEO, 1)
        + bytes(128)
        + abort(6)
        + fmt3(6)  # a fmt 3 now starts a new message of the remembered header
        + bytes(128)
        + fmt3(6)
        + bytes(128)
        + fmt3(6)
        + bytes(44)
        + media(AUDIO, b"\xaf\x01x", 9)
    )
    events = drain(server)
    assert events == [
        MediaReceived(1, VIDEO, 0, bytes(300)),
        MediaReceived(1, AUDIO, 9, b"\xaf\x01x"),
    ]
    assert server.reader.partial_bytes == 0


@pytest.mark.parametrize("type_id", [0, 7, 10, 13, 16, 19, 21, 23, 0x30, 0xFF])
@pytest.mark.parametrize("size", [0, 2, 300])
def test_case_23_unknown_message_type_is_ignored(type_id: int, size: int) -> None:
    """Case 23: an unknown (or unused) message type, even spanning several chunks, is
    skipped without losing sync."""
    server = publishing()
    server.receive_data(
        chunked(7, type_id, b"\x01" * size, stream_id=1)
        + media(VIDEO, b"\x17\x01\x00\x00\x00frame", 40)
    )
    assert drain(server) == [MediaReceived(1, VIDEO, 40, b"\x17\x01\x00\x00\x00frame")]
    assert not server.closed


def test_case_16_set_chunk_size_4096_before_connect() -> None:
    """Case 16: Set Chunk Size 4096 right after the handshake applies to the connect that
    follows (a connect longer than 128 bytes in a single chunk)."""
    server = new_server()
    handshake(server)
    message = connect("live", chunk_size=4096, description="x" * 300)
    assert len(message) > 400 and b"\xc3" not in message[:12]
    server.receive_data(set_chunk_size(4096) + message)
    events = drain(server)
    assert [type(e) for e in events] == [ConnectRequested]
    assert server.reader.chunk_size == 4096


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, "below the minimum"),
        (1, "below the minimum"),
        (63, "below the minimum"),
        (0x80000000, "high bit"),
        (0x80001000, "high bit"),
        (0xFFFFFFFF, "high bit"),
    ],
)
def test_set_chunk_size_refused(value: int, error: str) -> None:
    with pytest.raises(RemoteProtocolError, match=error):
        reader().set_chunk_size(value)


@pytest.mark.parametrize(
    ("value", "applied"),
    [(64, 64), (4096, 4096), (0xFFFFFF, 0xFFFFFF), (0x1000000, 0xFFFFFF), (0x7FFFFFFF, 0xFFFFFF)],
)
def test_set_chunk_size_applied_or_clamped(value: int, applied: int) -> None:
    r = reader()
    r.set_chunk_size(value)
    assert r.chunk_size == applied


def test_message_length_cap_and_chunk_stream_cap() -> None:
    r = reader(max_message_size_before_publish=1000)
    r.feed(fmt0(6, 0, 1001, VIDEO, 1))
    with pytest.raises(RemoteProtocolError, match="exceeds the cap"):
        r.next_message()

    r = reader(max_chunk_streams=3)
    r.feed(b"".join(fmt0(csid, 0, 1, AUDIO) + b"x" for csid in (3, 4, 5)))
    assert len([r.next_message() for _ in range(3)]) == 3
    r.feed(fmt0(6, 0, 1, AUDIO) + b"x")
    with pytest.raises(RemoteProtocolError, match="chunk streams"):
        r.next_message()


def test_unparsed_bytes_cap() -> None:
    r = reader(max_unparsed_bytes=100)
    r.feed(bytes(60))
    with pytest.raises(RemoteProtocolError, match="unparsed"):
        r.feed(bytes(41))


def test_half_received_header_rolls_back() -> None:
    """Every prefix of a header leaves the reader where it was."""
    data = fmt0(320, 0xFFFFFF + 5, 4, VIDEO, 7) + b"abcd"
    for cut in range(len(data)):
        r = reader()
        r.feed(data[:cut])
        assert r.next_message() is None
        assert r.unparsed_bytes == cut
        r.feed(data[cut:])
        assert r.next_message() == Message(320, VIDEO, 7, 0xFFFFFF + 5, b"abcd")


# -- ChunkWriter ------------------------------------------------------------------------


def test_writer_literal_bytes() -> None:
    w = ChunkWriter()
    assert w.write(3, 20, 0, 0, b"hi") == b"\x03\x00\x00\x00\x00\x00\x02\x14\x00\x00\x00\x00hi"
    assert w.write(6, 9, 1, 0x01020304, b"") == (
        b"\x06\xff\xff\xff\x00\x00\x00\x09\x01\x00\x00\x00\x01\x02\x03\x04"
    )
    w.chunk_size = 2
    assert w.write(64, 8, 1, 0xFFFFFF, b"abcde") == (
        b"\x00\x00\xff\xff\xff\x00\x00\x05\x08\x01\x00\x00\x00\x00\xff\xff\xffab"
        b"\xc0\x00\x00\xff\xff\xffcd"
        b"\xc0\x00\x00\xff\xff\xffe"
    )


@pytest.mark.parametrize("csid", [1, 0, 65600])
def test_writer_refuses_bad_csid(csid: int) -> None:
    with pytest.raises(ValueError):
        ChunkWriter().write(csid, 9, 1, 0, b"")


@pytest.mark.parametrize("chunk_size", [128, 4096, 1 << 16])
@pytest.mark.parametrize("timestamp", [0, 1000, 0xFFFFFE, 0xFFFFFF, 0x12345678, 0xFFFFFFFF])
def test_writer_round_trips_through_reader(chunk_size: int, timestamp: int) -> None:
    w = ChunkWriter()
    w.chunk_size = chunk_size
    sizes = [0, 1, chunk_size - 1, chunk_size, chunk_size + 1, 3 * chunk_size + 5]
    csids = [2, 63, 64, 319, 320, 65599]
    expected = []
    data = bytearray()
    for i, size in enumerate(sizes):
        csid = csids[i % len(csids)]
        payload = bytes((i + j) % 256 for j in range(size))
        data += w.write(csid, VIDEO, 1 + i, timestamp, payload)
        expected.append(Message(csid, VIDEO, 1 + i, timestamp, payload))
    limits = {"max_message_size_before_publish": 1 << 20, "max_chunk_streams": 8}
    assert read_all(bytes(data), chunk_size, **limits) == expected
    # Split at awkward places, too.
    r = reader(chunk_size, **limits)
    out = []
    step = 997
    for start in range(0, len(data), step):
        r.feed(bytes(data[start : start + step]))
        while (msg := r.next_message()) is not None:
            out.append(msg)
    assert out == expected
