"""The server (ingest) role: handshake, the publish command flow, and media out as events.

States run HANDSHAKE → CONNECTING → CONNECT_PENDING → CONNECTED → PUBLISH_PENDING →
PUBLISHING (→ CONNECTED again after an unpublish). In the two ``*_PENDING`` states the
connection stops parsing until the caller answers the request event with ``accept_*`` or
``reject_*``; bytes that arrive meanwhile stay queued (bounded by the unparsed-bytes cap).
The replies are the ones OBS and FFmpeg expect (see the module's tests for the exact bytes).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from typing import Any, ClassVar

from ingest.rtmp import amf0
from ingest.rtmp import handshake as hs
from ingest.rtmp import messages as m
from ingest.rtmp.chunks import Message
from ingest.rtmp.connection import RtmpConnection
from ingest.rtmp.errors import LocalProtocolError, RemoteProtocolError
from ingest.rtmp.events import (
    ConnectRequested,
    EndCause,
    HandshakeCompleted,
    MediaReceived,
    MetadataReceived,
    PublishRequested,
    Unpublished,
    media_received,
)


class ServerState(enum.Enum):
    HANDSHAKE_C0C1 = "handshake_c0c1"
    HANDSHAKE_C2 = "handshake_c2"
    CONNECTING = "connecting"
    CONNECT_PENDING = "connect_pending"
    CONNECTED = "connected"
    PUBLISH_PENDING = "publish_pending"
    PUBLISHING = "publishing"


# The states the per-message path tests, as module names: an enum member read through its
# class costs a lookup (~65 ns) each time, several times per message.
_HANDSHAKE_C0C1 = ServerState.HANDSHAKE_C0C1
_HANDSHAKE_C2 = ServerState.HANDSHAKE_C2
_CONNECT_PENDING = ServerState.CONNECT_PENDING
_PUBLISH_PENDING = ServerState.PUBLISH_PENDING
_PUBLISHING = ServerState.PUBLISHING

#: Status codes OBS and FFmpeg treat as a refused publish (OBS hangs on any other).
REJECT_CODES = (
    "NetStream.Publish.BadName",
    "NetStream.Publish.Denied",
    "NetStream.Publish.Rejected",
    "NetStream.Failed",
)
_MAX_STREAMS = 8
_SERVER_INFO = {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0, "mode": 1.0}


def split_stream_name(name: str) -> tuple[str, str]:
    """A publish name's key and query: ``"abc?x=1"`` → ``("abc", "x=1")``."""
    key, _, query = name.partition("?")
    return key, query


def normalize_app(app: str) -> str:
    """The application name without a query, a trailing ``/`` or a ``/_definst_`` instance."""
    app = app.partition("?")[0].rstrip("/")
    if app.endswith("/_definst_"):
        app = app[: -len("/_definst_")]
    return app.rstrip("/")


class ServerConnection(RtmpConnection):
    """One publisher's connection, seen from the ingest server."""

    def __init__(
        self,
        *,
        window_ack_size: int = 2_500_000,
        random: Callable[[int], bytes] = os.urandom,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window_ack_size = window_ack_size
        self.state = ServerState.HANDSHAKE_C0C1
        self.app = ""
        self.publish_stream_id = 0
        self._random = random
        self._digest = False
        self._connect_txn = 0.0
        self._object_encoding = 0.0
        self._streams: set[int] = set()
        self._next_stream_id = 1
        self._publish_name = ""
        #: When the connection must be publishing by; None once it has published.
        self._publish_deadline: float | None = self._started + self.limits.publish_timeout

    # -- decisions ----------------------------------------------------------------------

    def accept_connect(self) -> None:
        """Answer the pending ``connect`` with success and the usual setup messages."""
        self._expect(ServerState.CONNECT_PENDING, "accept_connect")
        self._send(m.CSID_CONTROL, m.WINDOW_ACK_SIZE, 0, 0, m.u32(self.window_ack_size))
        self._send(
            m.CSID_CONTROL, m.SET_PEER_BANDWIDTH, 0, 0, m.set_peer_bandwidth(self.window_ack_size)
        )
        self._set_chunk_size(self.local_chunk_size)
        info = m.status_info(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
            objectEncoding=self._object_encoding,
        )
        self._send_command(m.CSID_COMMAND, 0, "_result", self._connect_txn, _SERVER_INFO, info)
        self.state = ServerState.CONNECTED

    def reject_connect(self, description: str = "Connection rejected.") -> None:
        """Refuse the pending ``connect`` and close."""
        self._expect(ServerState.CONNECT_PENDING, "reject_connect")
        info = m.status_info("error", "NetConnection.Connect.Rejected", description)
        self._send_command(m.CSID_COMMAND, 0, "_error", self._connect_txn, None, info)
        self._terminate(EndCause.REJECTED, f"connect rejected: {description}")

    def accept_publish(self) -> None:
        """Start the pending publish: ``NetStream.Publish.Start``; media events follow."""
        self._expect(ServerState.PUBLISH_PENDING, "accept_publish")
        sid = self.publish_stream_id
        self._send(m.CSID_CONTROL, m.USER_CONTROL, 0, 0, m.user_control(m.STREAM_BEGIN, sid))
        info = m.status_info(
            "status",
            "NetStream.Publish.Start",
            "Publishing started.",
            details=self._publish_name,
        )
        self._send_command(m.CSID_STREAM_COMMAND, sid, "onStatus", 0, None, info)
        fc_info = m.status_info("status", "NetStream.Publish.Start", "Publishing started.")
        self._send_command(m.CSID_COMMAND, 0, "onFCPublish", 0, None, fc_info)
        self.state = ServerState.PUBLISHING
        self._publish_deadline = None
        self.reader.max_message_size = self.limits.max_message_size

    def reject_publish(
        self, code: str = "NetStream.Publish.BadName", description: str = "Publish rejected."
    ) -> None:
        """Refuse the pending publish with an error status OBS and FFmpeg act on, and close."""
        self._expect(ServerState.PUBLISH_PENDING, "reject_publish")
        if code not in REJECT_CODES:
            raise LocalProtocolError(f"{code!r} is not a status publishers treat as refusal")
        self._send_status_error(self.publish_stream_id, code, description)
        self._terminate(EndCause.REJECTED, f"publish rejected: {code}")

    # -- deadlines ----------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """As :meth:`RtmpConnection.get_timer`, and the deadline for publishing."""
        when = RtmpConnection.get_timer(self)
        deadline = self._publish_deadline
        if deadline is None or self.closed or (when is not None and when < deadline):
            return when
        return deadline

    def handle_timer(self, now: float) -> None:
        deadline = self._publish_deadline
        if deadline is not None and now >= deadline and not self.closed:
            self._terminate(
                EndCause.PUBLISH_TIMEOUT,
                f"not publishing within {self.limits.publish_timeout:g}s of connecting",
            )
            return
        RtmpConnection.handle_timer(self, now)

    def _expect(self, state: ServerState, what: str) -> None:
        if self.closed or self.state is not state:
            raise LocalProtocolError(f"{what} is not allowed in state {self.state.value}")

    def _send_status_error(self, stream_id: int, code: str, description: str) -> None:
        info = m.status_info("error", code, description)
        self._send_command(m.CSID_STREAM_COMMAND, stream_id, "onStatus", 0, None, info)

    # -- parsing ------------------------------------------------------------------------

    def _can_parse(self) -> bool:
        state = self.state
        return state is not _CONNECT_PENDING and state is not _PUBLISH_PENDING

    def _step(self) -> bool:
        state = self.state
        if state is _HANDSHAKE_C0C1:
            return self._read_c0c1()
        if state is _HANDSHAKE_C2:
            if self.reader.take_raw(hs.PACKET_SIZE) is None:
                return False
            self.state = ServerState.CONNECTING
            self.handshake_done = True
            self._events.append(HandshakeCompleted(self._digest))
            return True
        return RtmpConnection._step(self)  # (no super() lookup on the per-message path)

    def _read_c0c1(self) -> bool:
        version = self.reader.peek_byte()
        if version is None:
            return False
        if version != hs.RTMP_VERSION:
            raise RemoteProtocolError(hs.describe_bad_version(version))
        c0c1 = self.reader.take_raw(1 + hs.PACKET_SIZE)
        if c0c1 is None:
            return False
        c1 = c0c1[1:]
        self._digest = hs.digest_scheme(c1) is not None
        uptime = int((self.clock() - self._started) * 1000)
        s1 = hs.make_packet(uptime, self._random)
        self._out.append(bytes((hs.RTMP_VERSION,)) + s1 + c1)
        self.state = ServerState.HANDSHAKE_C2
        return True

    def _handle_message(self, msg: Message) -> None:
        type_id = msg.type_id
        if type_id == m.VIDEO or type_id == m.AUDIO:
            if self.state is _PUBLISHING and msg.stream_id == self.publish_stream_id:
                self._events.append(
                    media_received(msg.stream_id, type_id, msg.timestamp, msg.payload)
                )
        elif type_id == m.COMMAND_AMF0 or type_id == m.COMMAND_AMF3:
            values = m.split_command(
                msg.payload, type_id, self.limits.max_amf_depth, self.limits.max_amf_items
            )
            self._handle_command(msg, values)
        elif type_id == m.DATA_AMF0 or type_id == m.DATA_AMF3:
            self._handle_data(msg)
        elif (
            type_id == m.AGGREGATE
            and self.state is ServerState.PUBLISHING
            and msg.stream_id == self.publish_stream_id
        ):
            self._split_aggregate(msg)
        # Shared objects and unknown types are ignored; the chunk layer kept sync.

    def _handle_command(self, msg: Message, values: list[Any]) -> None:
        if len(values) < 2 or not isinstance(values[0], str):
            raise RemoteProtocolError("command message without a name and transaction id")
        name = values[0]
        txn = values[1] if isinstance(values[1], float) else 0.0
        args = values[2:]
        if self.state is ServerState.CONNECTING:
            if name != "connect":
                raise RemoteProtocolError(f"{name!r} before connect")
            self._on_connect(txn, args)
            return
        if name == "connect":
            raise RemoteProtocolError("a second connect on one connection")
        handler = self._COMMANDS.get(name)
        if handler is not None:
            handler(self, msg, txn, args)
        # Other commands (getStreamLength, _checkbw, FCSubscribe, ...) need no answer.

    def _on_connect(self, txn: float, args: list[Any]) -> None:
        props = args[0] if args else None
        if not isinstance(props, dict):
            raise RemoteProtocolError("connect without a command object")
        app = props.get("app")
        tc_url = props.get("tcUrl")
        if not isinstance(app, str):
            raise RemoteProtocolError("connect without an app name")
        if not isinstance(tc_url, str):
            raise RemoteProtocolError("connect without a tcUrl")
        flash_ver = props.get("flashVer")
        encoding = props.get("objectEncoding")
        self._connect_txn = txn
        self._object_encoding = encoding if isinstance(encoding, float) else 0.0
        self.app = normalize_app(app)
        self.state = ServerState.CONNECT_PENDING
        self._events.append(
            ConnectRequested(
                app=self.app,
                tc_url=tc_url,
                flash_ver=flash_ver if isinstance(flash_ver, str) else None,
                object_encoding=self._object_encoding,
                properties=dict(props),
            )
        )

    def _reply_result(self, _msg: Message, txn: float, _args: list[Any]) -> None:
        if txn:
            self._send_command(m.CSID_COMMAND, 0, "_result", txn, None, amf0.UNDEFINED)

    def _on_create_stream(self, _msg: Message, txn: float, _args: list[Any]) -> None:
        if len(self._streams) >= _MAX_STREAMS:
            raise RemoteProtocolError(f"more than {_MAX_STREAMS} streams created")
        sid = self._next_stream_id
        self._next_stream_id += 1
        self._streams.add(sid)
        self._send_command(m.CSID_COMMAND, 0, "_result", txn, None, float(sid))

    def _on_publish(self, msg: Message, txn: float, args: list[Any]) -> None:
        sid = msg.stream_id
        if sid not in self._streams:
            self._send_status_error(sid, "NetStream.Publish.BadName", "Unknown stream id.")
            raise RemoteProtocolError(f"publish on stream id {sid}, which was never created")
        if self.state is not ServerState.CONNECTED:
            self._send_status_error(sid, "NetStream.Publish.BadName", "Already publishing.")
            raise RemoteProtocolError("publish while already publishing")
        name = args[1] if len(args) > 1 else None
        if not isinstance(name, str) or not name.partition("?")[0]:
            self._send_status_error(sid, "NetStream.Publish.BadName", "No stream name.")
            raise RemoteProtocolError("publish without a stream name")
        kind = args[2] if len(args) > 2 and isinstance(args[2], str) else "live"
        key, query = split_stream_name(name)
        self._publish_name = name
        self.publish_stream_id = sid
        self.state = ServerState.PUBLISH_PENDING
        self._events.append(PublishRequested(sid, self.app, key, query, kind))

    def _on_fc_unpublish(self, msg: Message, txn: float, args: list[Any]) -> None:
        self._reply_result(msg, txn, args)
        self._end_publish("FCUnpublish")

    def _on_delete_stream(self, _msg: Message, _txn: float, args: list[Any]) -> None:
        sid = args[1] if len(args) > 1 and isinstance(args[1], float) else None
        if sid is not None and not sid.is_integer():
            sid = None  # NaN, infinities and fractions name no stream (and int() would raise)
        if sid is not None and int(sid) == self.publish_stream_id:
            self._end_publish("deleteStream")
        if sid is not None:
            self._streams.discard(int(sid))

    def _on_close_stream(self, msg: Message, _txn: float, _args: list[Any]) -> None:
        if msg.stream_id == self.publish_stream_id:
            self._end_publish("closeStream")

    def _end_publish(self, command: str) -> None:
        if self.state is ServerState.PUBLISHING:
            self.state = ServerState.CONNECTED
            self.reader.max_message_size = self.limits.max_message_size_before_publish
            self._events.append(Unpublished(self.publish_stream_id, command))

    _COMMANDS: ClassVar[
        dict[str, Callable[[ServerConnection, Message, float, list[Any]], None]]
    ] = {
        "releaseStream": _reply_result,
        "FCPublish": _reply_result,
        "createStream": _on_create_stream,
        "publish": _on_publish,
        "FCUnpublish": _on_fc_unpublish,
        "deleteStream": _on_delete_stream,
        "closeStream": _on_close_stream,
    }

    def _handle_data(self, msg: Message) -> None:
        if self.state is not ServerState.PUBLISHING or msg.stream_id != self.publish_stream_id:
            return
        try:
            values = m.split_command(
                msg.payload, msg.type_id, self.limits.max_amf_depth, self.limits.max_amf_items
            )
        except RemoteProtocolError:
            return  # Metadata is advisory: a broken one is dropped, the stream goes on.
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) >= 2 and isinstance(values[0], str) and isinstance(values[1], dict):
            self._events.append(
                MetadataReceived(msg.stream_id, msg.timestamp, values[0], dict(values[1]))
            )

    def _split_aggregate(self, msg: Message) -> None:
        """Emit the audio/video FLV tags packed into an aggregate message."""
        data = msg.payload
        pos = 0
        first_ts: int | None = None
        while pos + 11 <= len(data):
            tag_type = data[pos]
            size = int.from_bytes(data[pos + 1 : pos + 4], "big")
            ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
            body_end = pos + 11 + size
            if body_end + 4 > len(data):
                raise RemoteProtocolError("aggregate message tag overruns the message")
            if first_ts is None:
                first_ts = ts
            if tag_type == m.AUDIO or tag_type == m.VIDEO:
                timestamp = (msg.timestamp + ts - first_ts) & 0xFFFFFFFF
                self._events.append(
                    MediaReceived(msg.stream_id, tag_type, timestamp, data[pos + 11 : body_end])
                )
            pos = body_end + 4
