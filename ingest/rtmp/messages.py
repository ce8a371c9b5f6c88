"""RTMP message type ids, protocol control and user control payloads, and command replies."""

from __future__ import annotations

from typing import Any

from ingest.rtmp import amf0

# Message type ids.
SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
SHARED_OBJECT_AMF3 = 16
COMMAND_AMF3 = 17
DATA_AMF0 = 18
SHARED_OBJECT_AMF0 = 19
COMMAND_AMF0 = 20
AGGREGATE = 22

# User control event types.
STREAM_BEGIN = 0
STREAM_EOF = 1
STREAM_DRY = 2
SET_BUFFER_LENGTH = 3
STREAM_IS_RECORDED = 4
PING_REQUEST = 6
PING_RESPONSE = 7

# Chunk stream ids we send on (FFmpeg's choices; peers accept any).
CSID_CONTROL = 2
CSID_COMMAND = 3
CSID_AUDIO = 4
CSID_STREAM_COMMAND = 5
CSID_VIDEO = 6
CSID_DATA = 8

#: Set Peer Bandwidth limit type "dynamic".
BANDWIDTH_DYNAMIC = 2


def u32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "big")


def user_control(event: int, value: int) -> bytes:
    return event.to_bytes(2, "big") + u32(value)


def set_peer_bandwidth(size: int, limit_type: int = BANDWIDTH_DYNAMIC) -> bytes:
    return u32(size) + bytes((limit_type,))


def status_info(level: str, code: str, description: str, **extra: Any) -> dict[str, Any]:
    """The info object of an ``onStatus``/``_result``/``_error``."""
    info: dict[str, Any] = {"level": level, "code": code, "description": description}
    info.update(extra)
    return info


def command(name: str, transaction_id: float, *args: Any) -> bytes:
    """An AMF0 command payload: name, transaction id, then the arguments."""
    return amf0.encode(name, float(transaction_id), *args)


def split_command(payload: bytes, type_id: int, max_depth: int, max_items: int) -> list[Any]:
    """Decode an AMF0 (type 20/18) or AMF3-wrapped (type 17/15) command or data payload."""
    if type_id in (COMMAND_AMF3, DATA_AMF3) and payload[:1] == b"\x00":
        payload = payload[1:]
    return amf0.decode_all(payload, max_depth=max_depth, max_items=max_items)
