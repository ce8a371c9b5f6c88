"""Byte-level building blocks for the RTMP core tests.

Chunk headers are built field by field from the wire layout (independently of
:class:`~ingest.rtmp.chunks.ChunkWriter`, so the reader is never tested only against the
writer), canned client messages carry AMF0 payloads, and small drivers take a
:class:`ServerConnection` through the handshake and the publish command flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ingest.rtmp import amf0
from ingest.rtmp.chunks import ChunkReader, Message
from ingest.rtmp.client import ClientConnection
from ingest.rtmp.events import (
    NEED_DATA,
    ConnectRequested,
    Event,
    HandshakeCompleted,
    PublishRequested,
)
from ingest.rtmp.limits import Limits
from ingest.rtmp.server import ServerConnection, ServerState

EXTENDED = 0xFFFFFF
PACKET_SIZE = 1536

# Message type ids, spelled out so the tests read as wire dumps.
SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF0 = 18
COMMAND_AMF0 = 20

#: A plain C1: time 0, four zero bytes, then a recognisable pattern.
C1 = bytes(8) + bytes(i % 251 for i in range(PACKET_SIZE - 8))
#: A C2 that matches no S1 (servers must not care).
C2 = bytes((i * 7) % 256 for i in range(PACKET_SIZE))


class FakeClock:
    """A clock the test moves by hand: ``clock.now = 12.5``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def zeros(size: int) -> bytes:
    """Deterministic "random" bytes for S1/C1."""
    return bytes(size)


# -- chunk headers ----------------------------------------------------------------------


def u24(value: int) -> bytes:
    return value.to_bytes(3, "big")


def u32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "big")


def basic_header(fmt: int, csid: int) -> bytes:
    """The 1-, 2- or 3-byte basic header (csid 2-63, 64-319, 320-65599)."""
    if csid < 64:
        return bytes(((fmt << 6) | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    rest = csid - 64
    return bytes(((fmt << 6) | 1, rest & 0xFF, rest >> 8))


def _ts_field(value: int) -> tuple[bytes, bytes]:
    if value >= EXTENDED:
        return u24(EXTENDED), u32(value)
    return u24(value), b""


def fmt0(csid: int, timestamp: int, length: int, type_id: int, stream_id: int = 0) -> bytes:
    field, ext = _ts_field(timestamp)
    return (
        basic_header(0, csid)
        + field
        + u24(length)
        + bytes((type_id,))
        + stream_id.to_bytes(4, "little")
        + ext
    )


def fmt1(csid: int, delta: int, length: int, type_id: int) -> bytes:
    field, ext = _ts_field(delta)
    return basic_header(1, csid) + field + u24(length) + bytes((type_id,)) + ext


def fmt2(csid: int, delta: int) -> bytes:
    field, ext = _ts_field(delta)
    return basic_header(2, csid) + field + ext


def fmt3(csid: int, extended: int | None = None) -> bytes:
    return basic_header(3, csid) + (u32(extended) if extended is not None else b"")


def chunked(
    csid: int,
    type_id: int,
    payload: bytes,
    *,
    timestamp: int = 0,
    stream_id: int = 0,
    chunk_size: int = 128,
    repeat_extended: bool = True,
) -> bytes:
    """One message as a fmt 0 chunk followed by fmt 3 continuation chunks."""
    out = bytearray(fmt0(csid, timestamp, len(payload), type_id, stream_id))
    out += payload[:chunk_size]
    ext = timestamp if timestamp >= EXTENDED and repeat_extended else None
    for start in range(chunk_size, len(payload), chunk_size):
        out += fmt3(csid, ext)
        out += payload[start : start + chunk_size]
    return bytes(out)


# -- client messages --------------------------------------------------------------------


def set_chunk_size(size: int, csid: int = 2) -> bytes:
    return fmt0(csid, 0, 4, SET_CHUNK_SIZE) + u32(size)


def abort(target_csid: int, csid: int = 2) -> bytes:
    return fmt0(csid, 0, 4, ABORT) + u32(target_csid)


def window_ack_size(size: int, csid: int = 2) -> bytes:
    return fmt0(csid, 0, 4, WINDOW_ACK_SIZE) + u32(size)


def ping_request(value: int, csid: int = 2) -> bytes:
    return fmt0(csid, 0, 6, USER_CONTROL) + b"\x00\x06" + u32(value)


def command(
    name: str,
    txn: float,
    *args: Any,
    csid: int = 3,
    stream_id: int = 0,
    chunk_size: int = 128,
) -> bytes:
    payload = amf0.encode(name, float(txn), *args)
    return chunked(csid, COMMAND_AMF0, payload, stream_id=stream_id, chunk_size=chunk_size)


def connect(
    app: str = "live",
    *,
    txn: float = 1.0,
    tc_url: str | None = "rtmp://example.test/live",
    chunk_size: int = 128,
    **extra: Any,
) -> bytes:
    props: dict[str, Any] = {
        "app": app,
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
    }
    if tc_url is not None:
        props["swfUrl"] = tc_url
        props["tcUrl"] = tc_url
    props.update(extra)
    return command("connect", txn, props, chunk_size=chunk_size)


def publish(key: str = "key", *, stream_id: int = 1, txn: float = 5.0) -> bytes:
    return command("publish", txn, None, key, "live", csid=5, stream_id=stream_id)


def media(
    type_id: int,
    payload: bytes,
    timestamp: int,
    *,
    stream_id: int = 1,
    csid: int | None = None,
    chunk_size: int = 128,
) -> bytes:
    if csid is None:
        csid = 4 if type_id == AUDIO else 6
    return chunked(
        csid, type_id, payload, timestamp=timestamp, stream_id=stream_id, chunk_size=chunk_size
    )


# -- drivers ----------------------------------------------------------------------------


def drain(conn: ServerConnection | ClientConnection) -> list[Event]:
    """Every event the connection can produce from what it has received so far."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        assert isinstance(event, Event)
        events.append(event)


def drain_accepting(server: ServerConnection) -> list[Event]:
    """Like :func:`drain`, accepting every connect and publish as it is requested."""
    events: list[Event] = []
    while True:
        event = server.next_event()
        if event is NEED_DATA:
            return events
        assert isinstance(event, Event)
        events.append(event)
        if isinstance(event, ConnectRequested):
            server.accept_connect()
        elif isinstance(event, PublishRequested):
            server.accept_publish()


def new_server(**kwargs: Any) -> ServerConnection:
    """A server with deterministic S1 bytes and a fake clock unless told otherwise."""
    kwargs.setdefault("random", zeros)
    kwargs.setdefault("clock", FakeClock())
    return ServerConnection(**kwargs)


def handshake(server: ServerConnection, c1: bytes = C1) -> bytes:
    """Run C0+C1 and C2 through ``server``; return S0+S1+S2."""
    server.receive_data(b"\x03" + c1)
    assert drain(server) == []
    reply = server.data_to_send()
    server.receive_data(C2)
    assert drain(server) == [HandshakeCompleted(digest=False)]
    return reply


def to_state(
    server: ServerConnection,
    state: ServerState,
    *,
    app: str = "live",
    key: str = "key",
) -> list[Event]:
    """Drive a fresh ``server`` to ``state`` with literal client bytes, accepting connect
    and publish on the way; returns the events seen and discards the server's output."""
    events: list[Event] = []
    handshake(server)
    if state is ServerState.CONNECTING:
        server.data_to_send()
        return events
    server.receive_data(connect(app))
    events += drain(server)
    assert isinstance(events[-1], ConnectRequested)
    if state is ServerState.CONNECT_PENDING:
        server.data_to_send()
        return events
    server.accept_connect()
    server.receive_data(
        command("releaseStream", 2, None, key)
        + command("FCPublish", 3, None, key)
        + command("createStream", 4, None)
    )
    events += drain(server)
    if state is ServerState.CONNECTED:
        server.data_to_send()
        return events
    server.receive_data(publish(key))
    events += drain(server)
    assert isinstance(events[-1], PublishRequested)
    if state is ServerState.PUBLISH_PENDING:
        server.data_to_send()
        return events
    server.accept_publish()
    assert server.state is ServerState.PUBLISHING
    server.data_to_send()
    return events


class WireReader:
    """Decodes what a connection sends, following its Set Chunk Size messages."""

    def __init__(self, chunk_size: int = 128) -> None:
        self.reader = ChunkReader(
            Limits(max_message_size_before_publish=1 << 24, max_partial_bytes=1 << 26)
        )
        self.reader.chunk_size = chunk_size

    def read(self, data: bytes) -> list[Message]:
        self.reader.feed(data)
        messages: list[Message] = []
        while (msg := self.reader.next_message()) is not None:
            if msg.type_id == SET_CHUNK_SIZE:
                self.reader.set_chunk_size(int.from_bytes(msg.payload, "big"))
            messages.append(msg)
        assert self.reader.unparsed_bytes == 0
        return messages


def read_messages(data: bytes, chunk_size: int = 4096) -> list[Message]:
    """The messages of a piece of a server's output, sent at ``chunk_size`` (the server's
    once connect was accepted)."""
    return WireReader(chunk_size).read(data)


def amf(msg: Message) -> list[Any]:
    assert msg.type_id == COMMAND_AMF0
    return amf0.decode_all(msg.payload)


def command_names(messages: Iterable[Message]) -> list[str]:
    return [amf(msg)[0] for msg in messages if msg.type_id == COMMAND_AMF0]


def status_codes(messages: Iterable[Message]) -> list[str]:
    """The ``code`` of every ``onStatus``/``_error`` among ``messages``."""
    codes = []
    for msg in messages:
        if msg.type_id != COMMAND_AMF0:
            continue
        values = amf(msg)
        if values[0] in ("onStatus", "_error") and isinstance(values[3], dict):
            codes.append(values[3]["code"])
    return codes


def pump(
    client: ClientConnection,
    server: ServerConnection,
    *,
    accept_connect: bool = True,
    accept_publish: bool = True,
) -> tuple[list[Event], list[Event]]:
    """Move bytes both ways until neither side has anything to send; answer the server's
    requests as told (``False`` leaves them pending). Returns (client events, server events)."""
    client_events: list[Event] = []
    server_events: list[Event] = []
    while True:
        moved = False
        data = client.data_to_send()
        if data:
            moved = True
            server.receive_data(data)
        for event in drain(server):
            server_events.append(event)
            if isinstance(event, ConnectRequested) and accept_connect:
                server.accept_connect()
            elif isinstance(event, PublishRequested) and accept_publish:
                server.accept_publish()
        data = server.data_to_send()
        if data:
            moved = True
            client.receive_data(data)
        client_events += drain(client)
        if not moved:
            return client_events, server_events
