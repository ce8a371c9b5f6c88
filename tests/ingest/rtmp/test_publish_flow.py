"""The publish command flow on the server core: exact replies, decisions, endings, and
the conformance cases 21, 22, 24-25, 27-38 of the protocol notes."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from ingest.flv.timestamps import TimestampUnwrapper
from ingest.flv.video import parse_video
from ingest.rtmp import amf0
from ingest.rtmp.errors import LocalProtocolError
from ingest.rtmp.events import (
    ConnectionTerminated,
    ConnectRequested,
    Event,
    HandshakeCompleted,
    MediaReceived,
    MetadataReceived,
    PublishRequested,
    Unpublished,
)
from ingest.rtmp.server import REJECT_CODES, ServerConnection, ServerState
from tests.ingest.rtmp.wire import (
    ACKNOWLEDGEMENT,
    AUDIO,
    C1,
    C2,
    COMMAND_AMF0,
    DATA_AMF0,
    USER_CONTROL,
    VIDEO,
    FakeClock,
    WireReader,
    amf,
    chunked,
    command,
    command_names,
    connect,
    drain,
    fmt0,
    fmt1,
    handshake,
    media,
    new_server,
    ping_request,
    publish,
    read_messages,
    set_chunk_size,
    status_codes,
    to_state,
    window_ack_size,
)

# The three setup messages after connect, byte for byte (csid 2, stream 0, time 0).
WINDOW_ACK_SIZE_2_5MB = b"\x02\x00\x00\x00\x00\x00\x04\x05\x00\x00\x00\x00\x00\x26\x25\xa0"
SET_PEER_BANDWIDTH_2_5MB = b"\x02\x00\x00\x00\x00\x00\x05\x06\x00\x00\x00\x00\x00\x26\x25\xa0\x02"
SET_CHUNK_SIZE_4096 = b"\x02\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00\x00\x00\x10\x00"
STREAM_BEGIN_1 = b"\x02\x00\x00\x00\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"


def num(value: float) -> bytes:
    return b"\x00" + struct.pack(">d", value)


def string(text: str) -> bytes:
    return b"\x02" + len(text).to_bytes(2, "big") + text.encode()


def publishing(**kwargs: Any) -> ServerConnection:
    server = new_server(**kwargs)
    to_state(server, ServerState.PUBLISHING)
    return server


def only_termination(events: list[Event]) -> ConnectionTerminated:
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, ConnectionTerminated)
    return event


# -- cases 24, 25: the exact replies ----------------------------------------------------


def test_case_24_obs_command_sequence_exact_replies() -> None:
    """Case 24: OBS's sequence (Set Chunk Size 4096, connect, pipelined releaseStream /
    FCPublish / createStream, publish) gets exactly the replies OBS expects; media flows."""
    server = new_server()
    handshake(server)
    wire = WireReader()

    server.receive_data(set_chunk_size(4096) + connect("live", chunk_size=4096))
    [request] = drain(server)
    assert request == ConnectRequested(
        app="live",
        tc_url="rtmp://example.test/live",
        flash_ver="FMLE/3.0 (compatible; FMSc/1.0)",
        object_encoding=0.0,
        properties={
            "app": "live",
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
            "swfUrl": "rtmp://example.test/live",
            "tcUrl": "rtmp://example.test/live",
        },
    )
    assert server.data_to_send() == b""  # nothing until the decision
    server.accept_connect()
    out = server.data_to_send()
    assert out.startswith(WINDOW_ACK_SIZE_2_5MB + SET_PEER_BANDWIDTH_2_5MB + SET_CHUNK_SIZE_4096)
    messages = wire.read(out)
    assert [m.type_id for m in messages] == [5, 6, 1, COMMAND_AMF0]
    result = messages[3]
    assert (result.csid, result.stream_id) == (3, 0)
    assert amf(result) == [
        "_result",
        1.0,
        {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0, "mode": 1.0},
        {
            "level": "status",
            "code": "NetConnection.Connect.Success",
            "description": "Connection succeeded.",
            "objectEncoding": 0.0,
        },
    ]
    assert server.state is ServerState.CONNECTED

    server.receive_data(
        command("releaseStream", 2, None, "key", chunk_size=4096)
        + command("FCPublish", 3, None, "key", chunk_size=4096)
        + command("createStream", 4, None, chunk_size=4096)
    )
    assert drain(server) == []
    messages = wire.read(server.data_to_send())
    assert [amf(m) for m in messages] == [
        ["_result", 2.0, None, amf0.UNDEFINED],
        ["_result", 3.0, None, amf0.UNDEFINED],
        ["_result", 4.0, None, 1.0],
    ]
    assert messages[0].payload == string("_result") + num(2) + b"\x05\x06"
    assert messages[2].payload == string("_result") + num(4) + b"\x05" + num(1)

    server.receive_data(
        chunked(5, COMMAND_AMF0, amf0.encode("publish", 5.0, None, "key", "live"), stream_id=1)
    )
    assert drain(server) == [PublishRequested(1, "live", "key", "", "live")]
    assert server.data_to_send() == b""  # never Publish.Start before the decision
    server.accept_publish()
    out = server.data_to_send()
    assert out.startswith(STREAM_BEGIN_1)
    messages = wire.read(out)
    assert messages[0].payload == b"\x00\x00\x00\x00\x00\x01"
    status = messages[1]
    assert (status.csid, status.stream_id, status.type_id) == (5, 1, COMMAND_AMF0)
    assert amf(status) == [
        "onStatus",
        0.0,
        None,
        {
            "level": "status",
            "code": "NetStream.Publish.Start",
            "description": "Publishing started.",
            "details": "key",
        },
    ]
    assert amf(messages[2])[0] == "onFCPublish"
    assert amf(messages[2])[3]["code"] == "NetStream.Publish.Start"
    assert len(messages) == 3

    meta = amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray({"width": 1280.0}))
    server.receive_data(
        chunked(4, DATA_AMF0, meta, stream_id=1, chunk_size=4096)
        + media(VIDEO, b"\x17\x00\x00\x00\x00config", 0, chunk_size=4096)
        + media(AUDIO, b"\xaf\x00\x12\x10", 0, chunk_size=4096)
        + media(VIDEO, b"\x17\x01\x00\x00\x00" + bytes(5000), 0, chunk_size=4096)
    )
    assert drain(server) == [
        MetadataReceived(1, 0, "onMetaData", {"width": 1280.0}),
        MediaReceived(1, VIDEO, 0, b"\x17\x00\x00\x00\x00config"),
        MediaReceived(1, AUDIO, 0, b"\xaf\x00\x12\x10"),
        MediaReceived(1, VIDEO, 0, b"\x17\x01\x00\x00\x00" + bytes(5000)),
    ]


def test_case_25_ffmpeg_command_sequence() -> None:
    """Case 25: FFmpeg's sequence (128-byte chunks, Lavf flashVer, createStream without an
    early chunk size) → createStream answered `_result(txn, null, 1)`."""
    server = new_server()
    handshake(server)
    message = connect("live", flashVer="FMLE/3.0 (compatible; Lavf61.7.100)")
    assert len(message) > 140  # spans chunks at the default size
    server.receive_data(message)
    [request] = drain(server)
    assert isinstance(request, ConnectRequested)
    assert request.flash_ver == "FMLE/3.0 (compatible; Lavf61.7.100)"
    server.accept_connect()
    wire = WireReader()
    wire.read(server.data_to_send())
    server.receive_data(
        command("releaseStream", 2, None, "stream")
        + command("FCPublish", 3, None, "stream")
        + command("createStream", 4, None)
    )
    drain(server)
    replies = wire.read(server.data_to_send())
    assert replies[2].payload == (
        b"\x02\x00\x07_result"
        b"\x00\x40\x10\x00\x00\x00\x00\x00\x00"  # 4.0
        b"\x05"  # null
        b"\x00\x3f\xf0\x00\x00\x00\x00\x00\x00"  # 1.0
    )
    server.receive_data(publish("stream", txn=5))
    assert drain(server) == [PublishRequested(1, "live", "stream", "", "live")]
    server.accept_publish()
    assert status_codes(wire.read(server.data_to_send())) == ["NetStream.Publish.Start"]
    server.receive_data(media(VIDEO, b"\x17\x01\x00\x00\x00" + bytes(300), 0))
    assert [type(e) for e in drain(server)] == [MediaReceived]


def test_case_24_object_encoding_is_echoed() -> None:
    server = new_server()
    handshake(server)
    server.receive_data(connect("live", objectEncoding=3.0))
    [request] = drain(server)
    assert isinstance(request, ConnectRequested) and request.object_encoding == 3.0
    server.accept_connect()
    result = read_messages(server.data_to_send())[-1]
    assert amf(result)[3]["objectEncoding"] == 3.0


def test_second_stream_gets_id_2_and_commands_needing_no_answer_are_quiet() -> None:
    server = new_server()
    to_state(server, ServerState.CONNECTED)
    server.receive_data(command("_checkbw", 5, None) + command("getStreamLength", 6, None, "x"))
    assert drain(server) == []
    assert server.data_to_send() == b""
    server.receive_data(command("createStream", 7, None))
    drain(server)
    assert amf(read_messages(server.data_to_send())[0]) == ["_result", 7.0, None, 2.0]


# -- cases 21, 22: acknowledgements and pings -------------------------------------------


def acks(messages: list[Any]) -> list[int]:
    return [int.from_bytes(m.payload, "big") for m in messages if m.type_id == ACKNOWLEDGEMENT]


def test_case_21_acknowledgements_after_window_ack_size() -> None:
    """Case 21: after the client's Window Ack Size, an Acknowledgement carrying the total
    bytes received goes out each time a window's worth has arrived."""
    server = publishing()
    server.receive_data(window_ack_size(1000))
    assert drain(server) == []
    acked = server.bytes_received
    wire = WireReader()
    for i in range(20):
        data = media(AUDIO, bytes(300), i)
        server.receive_data(data)
        assert [type(e) for e in drain(server)] == [MediaReceived]
        values = acks(wire.read(server.data_to_send()))
        if server.bytes_received - acked >= 1000:
            assert values == [server.bytes_received]
            acked = server.bytes_received
        else:
            assert values == []
    assert acked > server.bytes_received - 1000


def test_no_acknowledgements_without_window_ack_size() -> None:
    server = publishing()
    server.receive_data(media(VIDEO, bytes(100_000), 0, chunk_size=128)[:60_000])
    drain(server)
    assert server.data_to_send() == b""


def test_case_21_acknowledgements_wrap_mod_2_32() -> None:
    """Case 21: more than 4 GiB received → the sequence number wraps mod 2**32 and
    acknowledgements keep coming."""
    server = publishing()
    server.bytes_received = 2**32 - 2500
    server.receive_data(window_ack_size(1000))
    drain(server)
    start = server.bytes_received
    data = media(AUDIO, bytes(100), 0) * 5  # fmt 0 each time: 560 bytes
    assert len(data) == 560
    wire = WireReader()
    values = []
    for _ in range(12):
        server.receive_data(data)
        assert [type(e) for e in drain(server)] == [MediaReceived] * 5
        values += acks(wire.read(server.data_to_send()))
    assert values == [(start + 1120 * k) % 2**32 for k in range(1, 7)]
    assert values[2] < values[1]  # wrapped
    assert all(v < 2**32 for v in values)
    assert not server.closed


@pytest.mark.parametrize("state", [ServerState.CONNECTING, ServerState.PUBLISHING])
@pytest.mark.parametrize("csid", [2, 3, 40])
def test_case_22_ping_request_gets_ping_response(state: ServerState, csid: int) -> None:
    """Case 22: PingRequest → PingResponse with the same value (on any csid, in any state)."""
    server = new_server()
    to_state(server, state)
    server.receive_data(ping_request(0xDEADBEEF, csid=csid))
    assert drain(server) == []
    assert server.data_to_send() == (
        b"\x02\x00\x00\x00\x00\x00\x06\x04\x00\x00\x00\x00" + b"\x00\x07\xde\xad\xbe\xef"
    )


def test_other_user_control_events_need_no_answer() -> None:
    server = publishing()
    server.receive_data(
        fmt0(2, 0, 10, USER_CONTROL) + b"\x00\x03" + b"\x00\x00\x00\x01" + b"\x00\x00\x0b\xb8"
    )
    server.receive_data(fmt0(2, 0, 1, USER_CONTROL) + b"\x00")  # short: ignored
    assert drain(server) == []
    assert server.data_to_send() == b""


# -- cases 26-28: commands out of order -------------------------------------------------


@pytest.mark.parametrize(
    "props",
    [
        {"tcUrl": "rtmp://h/live"},  # no app
        {"app": "live"},  # no tcUrl
        {"app": 5.0, "tcUrl": "rtmp://h/live"},
        {"app": "live", "tcUrl": None},
    ],
)
def test_case_26_connect_missing_app_or_tc_url_closes(props: dict[str, Any]) -> None:
    """Case 26: connect without a usable app or tcUrl → close."""
    server = new_server()
    handshake(server)
    server.receive_data(command("connect", 1, props))
    assert only_termination(drain(server)).cause == "protocol_error"


@pytest.mark.parametrize(
    "message",
    [
        command("createStream", 2, None),
        publish("key", stream_id=1),
        command("releaseStream", 2, None, "key"),
        command("deleteStream", 2, None, 1.0),
    ],
)
def test_case_27_commands_before_connect_close(message: bytes) -> None:
    """Case 27: publish or createStream (or anything else) before connect → close, and
    nothing is sent."""
    server = new_server()
    handshake(server)
    server.receive_data(message)
    assert only_termination(drain(server)).cause == "protocol_error"
    assert server.data_to_send() == b""


def test_case_27_second_connect_closes() -> None:
    server = new_server()
    to_state(server, ServerState.CONNECTED)
    server.receive_data(connect())
    assert only_termination(drain(server)).cause == "protocol_error"


def test_case_28_publish_before_create_stream() -> None:
    """Case 28: publish before createStream → error status, then close."""
    server = new_server()
    handshake(server)
    server.receive_data(connect())
    drain(server)
    server.accept_connect()
    server.data_to_send()
    server.receive_data(publish("key", stream_id=1))
    assert only_termination(drain(server)).cause == "protocol_error"
    out = read_messages(server.data_to_send())
    assert status_codes(out) == ["NetStream.Publish.BadName"]
    assert amf(out[0])[3]["level"] == "error"


@pytest.mark.parametrize("stream_id", [0, 2, 0xFFFFFFFF])
def test_case_28_publish_on_unknown_stream_id(stream_id: int) -> None:
    """Case 28: publish on a stream id that was never created → error status, close."""
    server = new_server()
    to_state(server, ServerState.CONNECTED)
    server.receive_data(publish("key", stream_id=stream_id))
    assert only_termination(drain(server)).cause == "protocol_error"
    [status] = read_messages(server.data_to_send())
    assert status.stream_id == stream_id
    assert amf(status)[3]["code"] == "NetStream.Publish.BadName"


@pytest.mark.parametrize("name", ["", "?x=1", None, 5.0])
def test_publish_without_a_name_is_refused(name: Any) -> None:
    server = new_server()
    to_state(server, ServerState.CONNECTED)
    server.receive_data(command("publish", 5, None, name, "live", csid=5, stream_id=1))
    assert only_termination(drain(server)).cause == "protocol_error"
    assert status_codes(read_messages(server.data_to_send())) == ["NetStream.Publish.BadName"]


def test_second_publish_while_publishing_is_refused() -> None:
    server = publishing()
    server.receive_data(command("createStream", 8, None) + publish("other", stream_id=2))
    events = drain(server)
    assert only_termination(events).cause == "protocol_error"
    assert "NetStream.Publish.BadName" in status_codes(read_messages(server.data_to_send()))


# -- case 29 (core side): connections are independent ----------------------------------


def test_case_29_two_server_connections_are_independent() -> None:
    """Case 29 belongs to the session layer; the core's part: two connections publishing
    the same key share nothing, and one's rejection or failure leaves the other alone."""
    a, b = new_server(), new_server()
    for server in (a, b):
        handshake(server)
    a.receive_data(connect("live"))
    b.receive_data(set_chunk_size(4096) + connect("other", chunk_size=4096))
    [request_a] = drain(a)
    [request_b] = drain(b)
    assert isinstance(request_a, ConnectRequested) and request_a.app == "live"
    assert isinstance(request_b, ConnectRequested) and request_b.app == "other"
    assert (a.app, b.app) == ("live", "other")
    assert (a.reader.chunk_size, b.reader.chunk_size) == (128, 4096)
    a.accept_connect()
    b.accept_connect()
    for server, chunk_size in ((a, 128), (b, 4096)):
        server.receive_data(command("createStream", 4, None, chunk_size=chunk_size))
        server.receive_data(publish("same-key"))
    assert [type(e) for e in drain(a)] == [PublishRequested]
    assert [type(e) for e in drain(b)] == [PublishRequested]
    a.reject_publish("NetStream.Publish.BadName", "busy")
    b.accept_publish()
    assert only_termination(drain(a)).cause == "rejected"
    b.receive_data(media(VIDEO, b"\x17\x01\x00\x00\x00x", 0))
    assert drain(b) == [MediaReceived(1, VIDEO, 0, b"\x17\x01\x00\x00\x00x")]
    b.receive_data(b"\x44garbage")
    assert only_termination(drain(b)).cause == "protocol_error"
    c = new_server()
    c.receive_data(b"\x03" + C1 + C2)
    assert drain(c) == [HandshakeCompleted(False)]


# -- case 30: rejection -----------------------------------------------------------------


@pytest.mark.parametrize("code", REJECT_CODES)
def test_case_30_rejected_key(code: str) -> None:
    """Case 30: rejected key → error status with a code publishers act on, then close;
    Publish.Start is never sent."""
    server = new_server()
    to_state(server, ServerState.PUBLISH_PENDING)
    server.receive_data(media(VIDEO, b"early", 0))  # queued, never parsed
    server.reject_publish(code, "Stream key refused.")
    out = read_messages(server.data_to_send())
    assert len(out) == 1
    assert (out[0].csid, out[0].stream_id) == (5, 1)
    assert amf(out[0]) == [
        "onStatus",
        0.0,
        None,
        {"level": "error", "code": code, "description": "Stream key refused."},
    ]
    event = only_termination(drain(server))
    assert event.cause == "rejected"
    assert not event.error
    assert server.closed
    with pytest.raises(LocalProtocolError):
        server.accept_publish()
    assert server.data_to_send() == b""


def test_case_30_default_rejection_code_is_bad_name() -> None:
    server = new_server()
    to_state(server, ServerState.PUBLISH_PENDING)
    server.reject_publish()
    assert status_codes(read_messages(server.data_to_send())) == ["NetStream.Publish.BadName"]


def test_case_30_rejection_code_publishers_hang_on_is_refused_locally() -> None:
    server = new_server()
    to_state(server, ServerState.PUBLISH_PENDING)
    with pytest.raises(LocalProtocolError):
        server.reject_publish("NetStream.Publish.Start")
    assert not server.closed
    server.reject_publish("NetStream.Publish.Denied")
    assert "NetStream.Publish.Start" not in status_codes(read_messages(server.data_to_send()))


def test_reject_connect() -> None:
    server = new_server()
    to_state(server, ServerState.CONNECT_PENDING)
    server.reject_connect("Bad app.")
    [msg] = read_messages(server.data_to_send())
    assert amf(msg) == [
        "_error",
        1.0,
        None,
        {"level": "error", "code": "NetConnection.Connect.Rejected", "description": "Bad app."},
    ]
    assert only_termination(drain(server)).cause == "rejected"


@pytest.mark.parametrize(
    ("state", "call"),
    [
        (ServerState.CONNECTING, "accept_connect"),
        (ServerState.CONNECTED, "accept_connect"),
        (ServerState.CONNECT_PENDING, "accept_publish"),
        (ServerState.CONNECTED, "reject_publish"),
        (ServerState.PUBLISHING, "accept_publish"),
        (ServerState.PUBLISHING, "reject_connect"),
    ],
)
def test_decisions_out_of_state_raise_local_protocol_error(state: ServerState, call: str) -> None:
    server = new_server()
    to_state(server, state)
    with pytest.raises(LocalProtocolError):
        getattr(server, call)()


def test_bytes_after_connect_wait_for_the_decision() -> None:
    """Pipelined commands stay queued (not parsed, not answered) until accept_connect."""
    server = new_server()
    handshake(server)
    server.receive_data(connect() + command("createStream", 4, None))
    assert [type(e) for e in drain(server)] == [ConnectRequested]
    assert drain(server) == []
    assert server.unparsed_bytes > 0
    server.accept_connect()
    assert drain(server) == []
    assert command_names(read_messages(server.data_to_send())) == ["_result", "_result"]


# -- case 31: key and app normalisation -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key", "query"),
    [
        ("key?x=1", "key", "x=1"),
        ("s3cr3t", "s3cr3t", ""),
        ("s3cr3t?", "s3cr3t", ""),
        ("abc?a=1&b=2?c", "abc", "a=1&b=2?c"),
    ],
)
def test_case_31_stream_key_query_is_split(name: str, key: str, query: str) -> None:
    """Case 31: publish name `key?x=1` → key "key", query "x=1"."""
    server = new_server()
    to_state(server, ServerState.CONNECTED)
    server.receive_data(publish(name))
    [event] = drain(server)
    assert isinstance(event, PublishRequested)
    assert (event.key, event.query) == (key, query)
    assert repr(key) not in repr(event)  # the key stays out of logs
    server.accept_publish()
    status = next(m for m in read_messages(server.data_to_send()) if m.stream_id == 1)
    assert amf(status)[3]["details"] == name


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("live", "live"),
        ("live/", "live"),
        ("live/_definst_", "live"),
        ("live/_definst_/", "live"),
        ("live?token=1", "live"),
        ("live/sub", "live/sub"),
    ],
)
def test_case_31_app_normalisation(app: str, expected: str) -> None:
    """Case 31: an app with a trailing `/` or `/_definst_` → the plain app name."""
    server = new_server()
    to_state(server, ServerState.PUBLISH_PENDING, app=app)
    assert server.app == expected
    assert drain(server) == []
    server.accept_publish()


def test_case_31_publish_requested_carries_the_normalised_app() -> None:
    server = new_server()
    events = to_state(server, ServerState.PUBLISH_PENDING, app="live/_definst_")
    assert isinstance(events[0], ConnectRequested) and events[0].app == "live"
    assert events[-1] == PublishRequested(1, "live", "key", "", "live")


# -- case 32: the three ways a publish ends ---------------------------------------------


def test_case_32_fcunpublish_and_delete_stream_release_at_once() -> None:
    """Case 32: FCUnpublish + deleteStream → Unpublished at once (one event), back to
    CONNECTED; media on the old stream is ignored; a new publish works."""
    server = publishing()
    server.receive_data(
        command("FCUnpublish", 6, None, "key") + command("deleteStream", 7, None, 1.0)
    )
    assert drain(server) == [Unpublished(1, "FCUnpublish")]
    assert server.state is ServerState.CONNECTED
    assert amf(read_messages(server.data_to_send())[0]) == [
        "_result",
        6.0,
        None,
        amf0.UNDEFINED,
    ]
    server.receive_data(media(VIDEO, b"late", 5))
    assert drain(server) == []
    server.receive_data(command("createStream", 8, None) + publish("key", stream_id=2))
    assert drain(server) == [PublishRequested(2, "live", "key", "", "live")]


@pytest.mark.parametrize(
    ("message", "name"),
    [
        (command("deleteStream", 7, None, 1.0), "deleteStream"),
        (command("closeStream", 0, None, csid=5, stream_id=1), "closeStream"),
    ],
)
def test_case_32_delete_or_close_stream_alone(message: bytes, name: str) -> None:
    server = publishing()
    server.receive_data(message)
    assert drain(server) == [Unpublished(1, name)]


def test_case_32_abrupt_eof_ends_at_once() -> None:
    """Case 32: the peer closes TCP mid-stream → ConnectionTerminated(closed_by_peer)."""
    server = publishing()
    server.receive_data(media(VIDEO, bytes(300), 0)[:200])
    assert drain(server) == []
    server.receive_data(b"")
    event = only_termination(drain(server))
    assert event.cause == "closed_by_peer"
    assert "middle of a message" in event.reason
    assert server.reader.partial_bytes == 0


def test_case_32_silent_peer_hits_the_idle_timeout() -> None:
    """Case 32: a peer that goes silent → idle_timeout at last receive + N, not before."""
    clock = FakeClock(0.0)
    server = new_server(clock=clock, idle_timeout=30.0)
    to_state(server, ServerState.PUBLISHING)
    clock.now = 100.0
    server.receive_data(media(AUDIO, b"\xaf\x01x", 0))
    drain(server)
    assert server.get_timer() == 130.0
    server.handle_timer(129.99)
    assert drain(server) == []
    clock.now = 120.0
    server.receive_data(media(AUDIO, b"\xaf\x01y", 20))
    drain(server)
    assert server.get_timer() == 150.0
    server.handle_timer(130.0)
    assert drain(server) == []
    server.handle_timer(150.0)
    event = only_termination(drain(server))
    assert event.cause == "idle_timeout"
    assert event.error
    assert server.get_timer() is None


def test_close_locally() -> None:
    server = publishing()
    server.close("shutting down")
    assert only_termination(drain(server)) == ConnectionTerminated(
        "closed_locally", "shutting down"
    )
    server.close()
    assert drain(server) == []
    server.receive_data(media(AUDIO, b"x", 0))
    assert drain(server) == []


# -- cases 33-38: media and metadata pass through ---------------------------------------


def ecma_wrong_count(values: dict[str, float], count: int) -> bytes:
    body = b"".join(len(k).to_bytes(2, "big") + k.encode() + num(v) for k, v in values.items())
    return b"\x08" + count.to_bytes(4, "big") + body + b"\x00\x00\x09"


@pytest.mark.parametrize(
    "payload",
    [
        string("@setDataFrame") + string("onMetaData") + ecma_wrong_count({"width": 640.0}, 99),
        string("@setDataFrame") + string("onMetaData") + ecma_wrong_count({"width": 640.0}, 0),
        string("onMetaData") + b"\x03" + b"\x00\x05width" + num(640.0) + b"\x00\x00\x09",
    ],
)
def test_case_33_metadata_forms(payload: bytes) -> None:
    """Case 33: metadata as an ECMA array with a wrong count, or as an Object → parsed;
    the stream goes on."""
    server = publishing()
    server.receive_data(
        chunked(4, DATA_AMF0, payload, stream_id=1) + media(VIDEO, b"\x17\x01\x00\x00\x00", 0)
    )
    assert drain(server) == [
        MetadataReceived(1, 0, "onMetaData", {"width": 640.0}),
        MediaReceived(1, VIDEO, 0, b"\x17\x01\x00\x00\x00"),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        string("@setDataFrame"),
        string("@setDataFrame") + string("onMetaData") + b"\x08\x00\x00",  # truncated
        b"\xff\xfe",  # not AMF
        string("onMetaData") + string("not an object"),
    ],
)
def test_case_33_missing_or_broken_metadata(payload: bytes) -> None:
    """Case 33: metadata missing or broken → dropped, the stream works."""
    server = publishing()
    server.receive_data(chunked(4, DATA_AMF0, payload, stream_id=1) + media(AUDIO, b"\xaf\x01", 0))
    assert drain(server) == [MediaReceived(1, AUDIO, 0, b"\xaf\x01")]


def test_case_34_negative_cts_passes_through() -> None:
    """Case 34: CTS 0xFFFFDE is delivered untouched; the FLV layer reads PTS = DTS - 34."""
    payload = b"\x27\x01\xff\xff\xde" + b"\x00\x00\x00\x02\x41\x9a"
    server = publishing()
    server.receive_data(media(VIDEO, payload, 1000))
    [event] = drain(server)
    assert event == MediaReceived(1, VIDEO, 1000, payload)
    [packet] = parse_video(event.payload, event.timestamp)
    assert packet.pts == 1000 - 34


def test_case_35_pframes_first_repeated_headers_resolution_change() -> None:
    """Case 35: P-frames before the first keyframe, repeated sequence headers and a new
    sequence header mid-stream are all delivered in order."""
    frames = [
        (b"\x27\x01\x00\x00\x00" + b"p" * 50, 0),
        (b"\x27\x01\x00\x00\x00" + b"p" * 50, 33),
        (b"\x17\x00\x00\x00\x00" + b"avcC-720p", 66),
        (b"\x17\x00\x00\x00\x00" + b"avcC-720p", 66),
        (b"\x17\x01\x00\x00\x00" + b"k" * 3000, 66),
        (b"\x17\x00\x00\x00\x00" + b"avcC-1080p", 100),
        (b"\x17\x01\x00\x00\x00" + b"k" * 5000, 100),
    ]
    server = publishing()
    server.receive_data(b"".join(media(VIDEO, p, t) for p, t in frames))
    assert drain(server) == [MediaReceived(1, VIDEO, t, p) for p, t in frames]


@pytest.mark.parametrize(
    "messages",
    [
        [(AUDIO, b"\xaf\x00\x12\x10", 0), (AUDIO, b"\xaf\x01" + bytes(300), 21)],
        [(VIDEO, b"\x17\x00\x00\x00\x00c", 0), (VIDEO, b"\x17\x01\x00\x00\x00f", 33)],
        [(AUDIO, b"", 0), (AUDIO, b"\xaf\x01x", 21), (AUDIO, b"", 42)],
    ],
    ids=["audio-only", "video-only", "zero-length-audio"],
)
def test_case_36_audio_only_video_only_zero_length(
    messages: list[tuple[int, bytes, int]],
) -> None:
    """Case 36: audio-only, video-only, zero-length audio → accepted."""
    server = publishing()
    server.receive_data(b"".join(media(t, p, ts) for t, p, ts in messages))
    assert drain(server) == [MediaReceived(1, t, ts, p) for t, p, ts in messages]


@pytest.mark.parametrize(
    ("type_id", "payload"),
    [
        (VIDEO, b"\x90hvc1" + b"config"),  # SequenceStart, hvc1
        (VIDEO, b"\x91av01" + bytes(20)),  # CodedFrames, av01
        (VIDEO, b"\x93vp09" + bytes(20)),  # CodedFramesX, vp09
        (VIDEO, b"\x94avc1" + b"\x02\x00\x09colorInfo\x03\x00\x00\x09"),  # Metadata
        (VIDEO, b"\x96\x00avc1" + bytes(10)),  # Multitrack
        (VIDEO, b"\x97\x00\x00\x00\x00\x00\x01" + b"\x91hvc1" + bytes(8)),  # ModEx
        (VIDEO, b"\x91zzzz" + bytes(10)),  # unknown FourCC
        (AUDIO, b"\x90Opus" + b"OpusHead"),
        (AUDIO, b"\x91fLaC" + bytes(10)),
        (AUDIO, b"\x91ac-3" + bytes(10)),
        (AUDIO, b"\x91zzzz" + bytes(10)),
    ],
)
def test_case_37_enhanced_payloads_pass_through(type_id: int, payload: bytes) -> None:
    """Case 37: the core delivers enhanced (e-RTMP) payloads, unknown FourCCs included,
    byte for byte; the FLV layer parses them."""
    server = publishing()
    server.receive_data(media(type_id, payload, 10) + media(AUDIO, b"\xaf\x01", 11))
    assert drain(server) == [
        MediaReceived(1, type_id, 10, payload),
        MediaReceived(1, AUDIO, 11, b"\xaf\x01"),
    ]


def test_case_38_timestamp_wrap_and_backward_jump() -> None:
    """Case 38: timestamps wrapping at 2**32 (fmt 1 delta) or jumping backwards (fmt 0)
    are delivered mod 2**32 without a crash; the FLV unwrapper keeps them continuous."""
    server = publishing()
    server.receive_data(
        media(VIDEO, b"a", 0xFFFFFFF0)
        + fmt1(6, 0x20, 1, VIDEO)
        + b"b"
        + fmt1(6, 0xFFFFFFFF, 1, VIDEO)  # the largest delta: one step short of a full turn
        + b"c"
        + media(VIDEO, b"d", 5)
        + media(AUDIO, b"e", 0xFFFFFFFF)
    )
    events = drain(server)
    stamps = [e.timestamp for e in events if isinstance(e, MediaReceived)]
    assert stamps == [0xFFFFFFF0, 0x10, 0x0F, 5, 0xFFFFFFFF]
    unwrapper = TimestampUnwrapper()
    assert [unwrapper.unwrap(t) for t in stamps[:2]] == [0xFFFFFFF0, 2**32 + 0x10]
    assert not server.closed


def test_media_on_another_stream_id_is_ignored() -> None:
    server = publishing()
    server.receive_data(media(VIDEO, b"x", 0, stream_id=0) + media(VIDEO, b"y", 0, stream_id=7))
    assert drain(server) == []


def test_aggregate_message_is_split_into_media() -> None:
    def tag(type_id: int, ts: int, body: bytes) -> bytes:
        return (
            bytes((type_id,))
            + len(body).to_bytes(3, "big")
            + (ts & 0xFFFFFF).to_bytes(3, "big")
            + bytes((ts >> 24,))
            + b"\x00\x00\x00"
            + body
            + (11 + len(body)).to_bytes(4, "big")
        )

    payload = tag(VIDEO, 500, b"v1") + tag(AUDIO, 510, b"a1") + tag(18, 510, b"m")
    server = publishing()
    server.receive_data(chunked(6, 22, payload, timestamp=1000, stream_id=1))
    assert drain(server) == [
        MediaReceived(1, VIDEO, 1000, b"v1"),
        MediaReceived(1, AUDIO, 1010, b"a1"),
    ]
    server.receive_data(chunked(6, 22, payload[:-3], timestamp=1000, stream_id=1))
    events = drain(server)
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].cause == "protocol_error"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300, -1.0, 0.5])
def test_delete_stream_with_odd_stream_id_does_not_raise(value: float) -> None:
    """A deleteStream whose stream id is not a small whole number is ignored."""
    server = publishing()
    server.receive_data(command("deleteStream", 7, None, value))
    assert drain(server) == []
    assert server.state is ServerState.PUBLISHING


def test_commands_in_amf3_wrapper_are_understood() -> None:
    server = new_server()
    handshake(server)
    payload = b"\x00" + amf0.encode("connect", 1.0, {"app": "live", "tcUrl": "rtmp://h/live"})
    server.receive_data(chunked(3, 17, payload))
    [event] = drain(server)
    assert isinstance(event, ConnectRequested) and event.app == "live"


def test_eof_while_publish_is_being_decided_ends_the_connection() -> None:
    """A publisher that leaves before the authorizer answers needs no answer."""
    from ingest.rtmp import ConnectionTerminated, LocalProtocolError, ServerConnection
    from ingest.rtmp.server import ServerState
    from tests.ingest.rtmp.wire import to_state

    server = ServerConnection()
    to_state(server, ServerState.PUBLISH_PENDING)
    server.receive_data(b"")
    event = server.next_event()
    assert isinstance(event, ConnectionTerminated)
    assert event.cause == "closed_by_peer"
    with pytest.raises(LocalProtocolError):
        server.accept_publish()
