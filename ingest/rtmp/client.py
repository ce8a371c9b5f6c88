"""The client (publisher) role of the core: connect, create a stream, publish, send media.

It drives the command flow the way OBS does (Set Chunk Size, ``connect``, then pipelined
``releaseStream``/``FCPublish``/``createStream``, then ``publish``) and reports progress as
events: :class:`HandshakeCompleted`, :class:`ConnectAccepted`, :class:`StreamCreated`,
:class:`PublishStarted`, or :class:`StatusReceived` for an error status (after which the
server closes). Tests and the load generator publish through it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from typing import Any

from ingest.rtmp import amf0
from ingest.rtmp import handshake as hs
from ingest.rtmp import messages as m
from ingest.rtmp.chunks import Message
from ingest.rtmp.connection import RtmpConnection
from ingest.rtmp.errors import LocalProtocolError, RemoteProtocolError
from ingest.rtmp.events import (
    ConnectAccepted,
    HandshakeCompleted,
    PublishStarted,
    StatusReceived,
    StreamCreated,
)

_TXN_CONNECT = 1.0
_TXN_CREATE_STREAM = 4.0


class ClientState(enum.Enum):
    HANDSHAKE = "handshake"
    CONNECTING = "connecting"
    CREATING_STREAM = "creating_stream"
    PUBLISH_REQUESTED = "publish_requested"
    PUBLISHING = "publishing"
    UNPUBLISHED = "unpublished"


class ClientConnection(RtmpConnection):
    """A publisher's side of one connection. C0+C1 are queued on construction."""

    def __init__(
        self,
        *,
        app: str,
        stream_name: str,
        tc_url: str | None = None,
        flash_ver: str = "FMLE/3.0 (compatible; rtmp-ingest)",
        random: Callable[[int], bytes] = os.urandom,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.stream_name = stream_name
        self.tc_url = tc_url if tc_url is not None else f"rtmp://localhost/{app}"
        self.flash_ver = flash_ver
        self.state = ClientState.HANDSHAKE
        self.stream_id = 0
        self._out.append(bytes((hs.RTMP_VERSION,)) + hs.make_packet(0, random))

    # -- sending ------------------------------------------------------------------------

    def send_video(self, timestamp: int, payload: bytes) -> None:
        """Queue one video message (an FLV video tag body) at ``timestamp`` ms."""
        self._send_media(m.CSID_VIDEO, m.VIDEO, timestamp, payload)

    def send_audio(self, timestamp: int, payload: bytes) -> None:
        """Queue one audio message (an FLV audio tag body) at ``timestamp`` ms."""
        self._send_media(m.CSID_AUDIO, m.AUDIO, timestamp, payload)

    def send_metadata(self, values: Mapping[str, Any], timestamp: int = 0) -> None:
        """Queue ``@setDataFrame("onMetaData", values)`` as OBS and FFmpeg send it."""
        self._require_publishing()
        payload = amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(values))
        self._send(m.CSID_DATA, m.DATA_AMF0, self.stream_id, timestamp, payload)

    def unpublish(self) -> None:
        """Queue ``FCUnpublish`` and ``deleteStream``, as OBS and FFmpeg stop."""
        self._require_publishing()
        self._send_command(m.CSID_COMMAND, 0, "FCUnpublish", 6, None, self.stream_name)
        self._send_command(m.CSID_COMMAND, 0, "deleteStream", 7, None, float(self.stream_id))
        self.state = ClientState.UNPUBLISHED

    def _send_media(self, csid: int, type_id: int, timestamp: int, payload: bytes) -> None:
        if self.state is not ClientState.PUBLISHING or self.closed:
            self._require_publishing()
        self._out.append(self.writer.write(csid, type_id, self.stream_id, timestamp, payload))

    def _require_publishing(self) -> None:
        if self.closed or self.state is not ClientState.PUBLISHING:
            raise LocalProtocolError(f"not publishing (state {self.state.value})")

    # -- parsing ------------------------------------------------------------------------

    def _step(self) -> bool:
        if self.state is ClientState.HANDSHAKE:
            version = self.reader.peek_byte()
            if version is None:
                return False
            if version != hs.RTMP_VERSION:
                raise RemoteProtocolError(hs.describe_bad_version(version))
            packets = self.reader.take_raw(1 + 2 * hs.PACKET_SIZE)
            if packets is None:
                return False
            s1 = packets[1 : 1 + hs.PACKET_SIZE]
            self._out.append(s1)  # C2 echoes S1.
            self.handshake_done = True
            self.state = ClientState.CONNECTING
            self._events.append(HandshakeCompleted())
            self._set_chunk_size(self.local_chunk_size)
            props = {
                "app": self.app,
                "type": "nonprivate",
                "flashVer": self.flash_ver,
                "swfUrl": self.tc_url,
                "tcUrl": self.tc_url,
            }
            self._send_command(m.CSID_COMMAND, 0, "connect", _TXN_CONNECT, props)
            return True
        return super()._step()

    def _handle_message(self, msg: Message) -> None:
        if msg.type_id not in (m.COMMAND_AMF0, m.COMMAND_AMF3):
            return
        values = m.split_command(
            msg.payload, msg.type_id, self.limits.max_amf_depth, self.limits.max_amf_items
        )
        if len(values) < 2 or not isinstance(values[0], str):
            raise RemoteProtocolError("command message without a name and transaction id")
        name, txn, args = values[0], values[1], values[2:]
        if name == "_result" and txn == _TXN_CONNECT and self.state is ClientState.CONNECTING:
            props = args[0] if args and isinstance(args[0], dict) else {}
            info = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            self._events.append(ConnectAccepted(props, info))
            self._send_command(m.CSID_COMMAND, 0, "releaseStream", 2, None, self.stream_name)
            self._send_command(m.CSID_COMMAND, 0, "FCPublish", 3, None, self.stream_name)
            self._send_command(m.CSID_COMMAND, 0, "createStream", _TXN_CREATE_STREAM, None)
            self.state = ClientState.CREATING_STREAM
        elif name == "_result" and txn == _TXN_CREATE_STREAM:
            sid = args[1] if len(args) > 1 else None
            if not isinstance(sid, float) or not sid.is_integer() or not 1 <= sid <= 0xFFFFFFFF:
                raise RemoteProtocolError(f"createStream answered without a stream id: {args!r}")
            self.stream_id = int(sid)
            self._events.append(StreamCreated(self.stream_id))
            self._send_command(
                m.CSID_STREAM_COMMAND, self.stream_id, "publish", 5, None, self.stream_name, "live"
            )
            self.state = ClientState.PUBLISH_REQUESTED
        elif name in ("onStatus", "_error"):
            info = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            level = str(info.get("level", "error" if name == "_error" else ""))
            code = str(info.get("code", ""))
            description = str(info.get("description", ""))
            if code == "NetStream.Publish.Start" and self.state is ClientState.PUBLISH_REQUESTED:
                self.state = ClientState.PUBLISHING
                self._events.append(PublishStarted(self.stream_id))
            elif level == "error" or name == "_error":
                self._events.append(StatusReceived(level, code, description))
