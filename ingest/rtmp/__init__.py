"""Sans-IO RTMP: bytes in, typed events out, bytes to send back. No sockets, no asyncio.

Use :class:`ServerConnection` for the ingest side and :class:`ClientConnection` for a
publisher; both take ``receive_data(bytes)``, give ``next_event()`` and ``data_to_send()``,
and are driven in time by ``get_timer()``/``handle_timer(now)`` with an injected clock.
"""

from ingest.rtmp.client import ClientConnection, ClientState
from ingest.rtmp.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ingest.rtmp.events import (
    NEED_DATA,
    ConnectAccepted,
    ConnectionTerminated,
    ConnectRequested,
    Event,
    HandshakeCompleted,
    MediaReceived,
    MetadataReceived,
    PublishRequested,
    PublishStarted,
    StatusReceived,
    StreamCreated,
    Unpublished,
)
from ingest.rtmp.limits import Limits
from ingest.rtmp.server import REJECT_CODES, ServerConnection, ServerState

__all__ = [
    "NEED_DATA",
    "REJECT_CODES",
    "ClientConnection",
    "ClientState",
    "ConnectAccepted",
    "ConnectRequested",
    "ConnectionTerminated",
    "Event",
    "HandshakeCompleted",
    "Limits",
    "LocalProtocolError",
    "MediaReceived",
    "MetadataReceived",
    "ProtocolError",
    "PublishRequested",
    "PublishStarted",
    "RemoteProtocolError",
    "ServerConnection",
    "ServerState",
    "StatusReceived",
    "StreamCreated",
    "Unpublished",
]
