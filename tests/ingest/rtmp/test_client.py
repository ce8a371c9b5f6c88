"""The client (publisher) role, pumped against the server role."""

from __future__ import annotations

import pytest

from ingest.rtmp import amf0
from ingest.rtmp.client import ClientConnection, ClientState
from ingest.rtmp.errors import LocalProtocolError
from ingest.rtmp.events import (
    ConnectAccepted,
    ConnectionTerminated,
    ConnectRequested,
    HandshakeCompleted,
    MediaReceived,
    MetadataReceived,
    PublishRequested,
    PublishStarted,
    StatusReceived,
    StreamCreated,
    Unpublished,
)
from ingest.rtmp.server import ServerConnection, ServerState
from tests.ingest.rtmp.wire import (
    ACKNOWLEDGEMENT,
    AUDIO,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    FakeClock,
    WireReader,
    chunked,
    drain,
    new_server,
    pump,
    u32,
    zeros,
)


def new_client(**kwargs: object) -> ClientConnection:
    options: dict[str, object] = {
        "app": "live",
        "stream_name": "key?token=abc",
        "random": zeros,
        "clock": FakeClock(),
    }
    options.update(kwargs)
    return ClientConnection(**options)  # type: ignore[arg-type]


def publishing_pair(**server_kwargs: object) -> tuple[ClientConnection, ServerConnection]:
    client, server = new_client(), new_server(**server_kwargs)
    pump(client, server)
    assert client.state is ClientState.PUBLISHING
    assert server.state is ServerState.PUBLISHING
    return client, server


def test_c0_c1_are_queued_on_construction() -> None:
    out = new_client().data_to_send()
    assert len(out) == 1 + 1536
    assert out[:9] == b"\x03" + bytes(8)


def test_full_publish_between_client_and_server() -> None:
    client = new_client(tc_url="rtmp://example.test/live")
    server = new_server()
    client_events, server_events = pump(client, server)
    assert client_events == [
        HandshakeCompleted(False),
        ConnectAccepted(
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0, "mode": 1.0},
            {
                "level": "status",
                "code": "NetConnection.Connect.Success",
                "description": "Connection succeeded.",
                "objectEncoding": 0.0,
            },
        ),
        StreamCreated(1),
        PublishStarted(1),
    ]
    assert server_events[0] == HandshakeCompleted(False)
    connect = server_events[1]
    assert isinstance(connect, ConnectRequested)
    assert (connect.app, connect.tc_url) == ("live", "rtmp://example.test/live")
    assert connect.flash_ver == "FMLE/3.0 (compatible; rtmp-ingest)"
    assert connect.properties["type"] == "nonprivate"
    assert server_events[2] == PublishRequested(1, "live", "key", "token=abc", "live")
    assert len(server_events) == 3
    assert server.reader.chunk_size == 4096  # the client announced its chunk size
    assert client.reader.chunk_size == 4096  # and so did the server

    client.send_metadata({"width": 1920.0, "height": 1080.0})
    client.send_video(0, b"\x17\x00\x00\x00\x00config")
    client.send_audio(0, b"\xaf\x00\x12\x10")
    client.send_video(0xFFFFFF + 10, b"\x17\x01\x00\x00\x00" + bytes(10_000))
    client.send_audio(0xFFFFFF + 11, b"")
    client_events, server_events = pump(client, server)
    assert client_events == []
    assert server_events == [
        MetadataReceived(1, 0, "onMetaData", {"width": 1920.0, "height": 1080.0}),
        MediaReceived(1, VIDEO, 0, b"\x17\x00\x00\x00\x00config"),
        MediaReceived(1, AUDIO, 0, b"\xaf\x00\x12\x10"),
        MediaReceived(1, VIDEO, 0xFFFFFF + 10, b"\x17\x01\x00\x00\x00" + bytes(10_000)),
        MediaReceived(1, AUDIO, 0xFFFFFF + 11, b""),
    ]

    client.unpublish()
    assert client.state is ClientState.UNPUBLISHED
    client_events, server_events = pump(client, server)
    assert server_events == [Unpublished(1, "FCUnpublish")]
    assert server.state is ServerState.CONNECTED
    with pytest.raises(LocalProtocolError):
        client.send_video(100, b"x")


@pytest.mark.parametrize("chunk_size", [128, 60000])
def test_client_chunk_sizes(chunk_size: int) -> None:
    client, server = new_client(chunk_size=chunk_size), new_server()
    pump(client, server)
    payload = bytes(range(256)) * 100
    client.send_video(40, payload)
    _, server_events = pump(client, server)
    assert server_events == [MediaReceived(1, VIDEO, 40, payload)]


@pytest.mark.parametrize("code", ["NetStream.Publish.Denied", "NetStream.Publish.BadName"])
def test_rejected_publish_gives_status_received(code: str) -> None:
    client, server = new_client(), new_server()
    client_events, server_events = pump(client, server, accept_publish=False)
    assert isinstance(server_events[-1], PublishRequested)
    assert client.state is ClientState.PUBLISH_REQUESTED
    assert client_events[-1] == StreamCreated(1)
    server.reject_publish(code, "Stream key refused.")
    client_events, server_events = pump(client, server)
    assert client_events == [StatusReceived("error", code, "Stream key refused.")]
    assert [e.cause for e in server_events if isinstance(e, ConnectionTerminated)] == ["rejected"]
    assert client.state is ClientState.PUBLISH_REQUESTED
    with pytest.raises(LocalProtocolError):
        client.send_audio(0, b"x")


def test_rejected_connect_gives_status_received() -> None:
    client, server = new_client(), new_server()
    client_events, _ = pump(client, server, accept_connect=False)
    assert client_events == [HandshakeCompleted(False)]
    server.reject_connect("Unknown application.")
    client_events, _ = pump(client, server)
    assert client_events == [
        StatusReceived("error", "NetConnection.Connect.Rejected", "Unknown application.")
    ]
    assert client.state is ClientState.CONNECTING


@pytest.mark.parametrize("call", ["send_video", "send_audio", "send_metadata", "unpublish"])
@pytest.mark.parametrize("stage", ["new", "connecting", "publish_requested", "closed"])
def test_sending_before_publish_started_raises(call: str, stage: str) -> None:
    client, server = new_client(), new_server()
    if stage == "connecting":
        pump(client, server, accept_connect=False)
        assert client.state is ClientState.CONNECTING
    elif stage == "publish_requested":
        pump(client, server, accept_publish=False)
    elif stage == "closed":
        pump(client, server)
        client.close()
    method = getattr(client, call)
    args: tuple[object, ...] = {
        "send_video": (0, b"x"),
        "send_audio": (0, b"x"),
        "send_metadata": ({"a": 1.0},),
        "unpublish": (),
    }[call]
    with pytest.raises(LocalProtocolError):
        method(*args)


def test_server_answers_client_ping() -> None:
    client, server = publishing_pair()
    server.receive_data(client.writer.write(2, USER_CONTROL, 0, 0, b"\x00\x06" + u32(123456)))
    assert drain(server) == []
    out = server.data_to_send()
    [pong] = WireReader(4096).read(out)
    assert pong.type_id == USER_CONTROL
    assert pong.payload == b"\x00\x07" + u32(123456)
    client.receive_data(out)
    assert drain(client) == []
    assert not client.closed


def test_client_answers_server_ping() -> None:
    client, server = publishing_pair()
    client.receive_data(server.writer.write(2, USER_CONTROL, 0, 0, b"\x00\x06" + u32(7)))
    assert drain(client) == []
    [pong] = WireReader(4096).read(client.data_to_send())
    assert pong.payload == b"\x00\x07" + u32(7)


def test_client_acknowledges_the_server_window() -> None:
    """The server's Window Ack Size (sent with the connect reply) makes the client ack."""
    client, server = new_client(), new_server(window_ack_size=300)
    wire = WireReader()
    client_out = bytearray()
    server_out_total = 0
    while True:
        data = client.data_to_send()
        client_out += data
        server.receive_data(data)
        for event in drain(server):
            if isinstance(event, ConnectRequested):
                server.accept_connect()
            elif isinstance(event, PublishRequested):
                server.accept_publish()
        reply = server.data_to_send()
        server_out_total += len(reply)
        client.receive_data(reply)
        drain(client)
        if not data and not reply:
            break
    messages = wire.read(bytes(client_out[1 + 2 * 1536 :]))
    acks = [int.from_bytes(m.payload, "big") for m in messages if m.type_id == ACKNOWLEDGEMENT]
    assert acks, "the client never acknowledged"
    assert all(a <= server_out_total for a in acks)
    assert acks == sorted(acks)


def test_server_acknowledges_the_client_window() -> None:
    client, server = publishing_pair()
    server.receive_data(client.writer.write(2, WINDOW_ACK_SIZE, 0, 0, u32(5000)))
    drain(server)
    for i in range(6):
        client.send_video(i * 33, bytes(2000))
    server.receive_data(client.data_to_send())
    assert len(drain(server)) == 6
    out = WireReader(4096).read(server.data_to_send())
    assert [m.type_id for m in out] == [ACKNOWLEDGEMENT]
    assert int.from_bytes(out[0].payload, "big") == server.bytes_received
    client.receive_data(server.writer.write(2, ACKNOWLEDGEMENT, 0, 0, u32(1)))
    assert drain(client) == []


def test_client_handshake_deadline_and_bad_s0() -> None:
    clock = FakeClock(0.0)
    client = new_client(clock=clock)
    assert client.get_timer() == 10.0
    client.handle_timer(10.0)
    [event] = drain(client)
    assert isinstance(event, ConnectionTerminated) and event.cause == "handshake_timeout"

    client = new_client()
    client.receive_data(b"\x06" + bytes(100))
    [event] = drain(client)
    assert isinstance(event, ConnectionTerminated) and event.cause == "protocol_error"


@pytest.mark.parametrize("sid", [None, 0.0, -1.0, float("nan"), float("inf"), 2.0**40, 1.5])
def test_client_refuses_a_bad_create_stream_reply(sid: float | None) -> None:
    """A createStream _result without a usable stream id ends the connection cleanly."""
    client, server = new_client(), new_server()
    pump(client, server, accept_connect=False)
    server.accept_connect()
    client.receive_data(server.data_to_send())
    assert [type(e) for e in drain(client)] == [ConnectAccepted]
    reply = amf0.encode("_result", 4.0, None, sid)
    client.receive_data(chunked(3, 20, reply))
    events = drain(client)
    assert len(events) == 1
    assert isinstance(events[0], ConnectionTerminated)
    assert events[0].cause == "protocol_error"


def test_client_eof() -> None:
    client, _ = publishing_pair()
    client.receive_data(b"")
    [event] = drain(client)
    assert isinstance(event, ConnectionTerminated) and event.cause == "closed_by_peer"
