"""Typed events the RTMP core emits, as frozen dataclasses named in the past tense.

The server role emits the ``*Requested`` events and waits for the caller to answer with
``accept_*``/``reject_*``; the client role emits the ``*Accepted``/``*Started`` ones.
``ConnectionTerminated`` is always the last event of a connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ingest.rtmp.messages import AUDIO as AUDIO
from ingest.rtmp.messages import VIDEO as VIDEO


class Event:
    """Base class of every event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class HandshakeCompleted(Event):
    """C2/S2 arrived; chunk-stream messages follow.

    ``digest`` is true when the client's C1 carried a Flash-style HMAC digest (FFmpeg's
    does); it is accepted and echoed like a plain one.
    """

    digest: bool = False


@dataclass(frozen=True, slots=True)
class ConnectRequested(Event):
    """The client sent ``connect``. Answer with ``accept_connect`` or ``reject_connect``."""

    app: str
    tc_url: str | None
    flash_ver: str | None
    object_encoding: float
    #: Every property of the command object, AMF-decoded (including the ones above).
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamCreated(Event):
    """``createStream`` was answered with a new message stream id."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PublishRequested(Event):
    """The client sent ``publish``. Answer with ``accept_publish`` or ``reject_publish``.

    ``key`` is the publish name with any ``?query`` removed; ``query`` is what followed
    the ``?`` (empty when there was none). Never log ``key``.
    """

    stream_id: int
    app: str
    key: str
    query: str
    publish_type: str

    def __repr__(self) -> str:  # keeps the stream key out of logs and tracebacks
        return (
            f"PublishRequested(stream_id={self.stream_id}, app={self.app!r}, "
            f"key=<redacted>, query=<{len(self.query)} chars>, "
            f"publish_type={self.publish_type!r})"
        )


@dataclass(frozen=True, slots=True)
class MediaReceived(Event):
    """One audio (type 8) or video (type 9) message of the publishing stream.

    ``timestamp`` is the message timestamp as carried on the wire (32-bit milliseconds,
    already extended across the 24-bit field); unwrapping past 2**32 is the FLV layer's job.
    """

    stream_id: int
    message_type: int
    timestamp: int
    payload: bytes

    @property
    def is_video(self) -> bool:
        return self.message_type == VIDEO

    @property
    def is_audio(self) -> bool:
        return self.message_type == AUDIO


_new = object.__new__
_set_stream_id = MediaReceived.__dict__["stream_id"].__set__
_set_message_type = MediaReceived.__dict__["message_type"].__set__
_set_timestamp = MediaReceived.__dict__["timestamp"].__set__
_set_payload = MediaReceived.__dict__["payload"].__set__


def media_received(
    stream_id: int, message_type: int, timestamp: int, payload: bytes
) -> MediaReceived:
    """``MediaReceived(...)`` for the per-message path: the same frozen event, filled
    through its slots directly (a frozen dataclass's own ``__init__`` goes through
    ``object.__setattr__`` field by field, about twice the cost)."""
    event: MediaReceived = _new(MediaReceived)
    _set_stream_id(event, stream_id)
    _set_message_type(event, message_type)
    _set_timestamp(event, timestamp)
    _set_payload(event, payload)
    return event


@dataclass(frozen=True, slots=True)
class MetadataReceived(Event):
    """``@setDataFrame``/``onMetaData`` (AMF0 data message) from the publisher."""

    stream_id: int
    timestamp: int
    name: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unpublished(Event):
    """The publisher said it stopped (``FCUnpublish``, ``deleteStream`` or ``closeStream``)."""

    stream_id: int
    command: str


class EndCause(StrEnum):
    """Why a publish ended, as the listener tells its sink: how the connection ended (the
    ``cause`` of :class:`ConnectionTerminated`), or that the publisher said it stopped."""

    #: The peer closed the connection (EOF or reset).
    CLOSED_BY_PEER = "closed_by_peer"
    #: The handshake, the deadline for publishing or the idle read timeout passed.
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    PUBLISH_TIMEOUT = "publish_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    #: The peer broke the protocol or a limit.
    PROTOCOL_ERROR = "protocol_error"
    #: A connect or publish was rejected.
    REJECTED = "rejected"
    #: The local side closed it.
    CLOSED_LOCALLY = "closed_locally"
    #: The publisher sent ``FCUnpublish``, ``deleteStream`` or ``closeStream`` (an
    #: :class:`Unpublished` event; never the cause of a :class:`ConnectionTerminated`).
    UNPUBLISHED = "unpublished"


#: The causes that mean the peer misbehaved or missed a deadline.
_ERROR_CAUSES = frozenset(
    {
        EndCause.PROTOCOL_ERROR,
        EndCause.HANDSHAKE_TIMEOUT,
        EndCause.PUBLISH_TIMEOUT,
        EndCause.IDLE_TIMEOUT,
    }
)


@dataclass(frozen=True, slots=True)
class ConnectionTerminated(Event):
    """The connection is over; the caller should send what is left and close the socket.

    ``reason`` says what happened, in words fit for a log line.
    """

    cause: EndCause
    reason: str

    @property
    def error(self) -> bool:
        """True when the peer broke the protocol, hit a limit or missed a deadline."""
        return self.cause in _ERROR_CAUSES


# --- client role -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectAccepted(Event):
    """The server answered ``connect`` with ``_result``."""

    properties: dict[str, Any]
    information: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PublishStarted(Event):
    """The server sent ``NetStream.Publish.Start``: media may be sent."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StatusReceived(Event):
    """An ``onStatus`` or ``_error`` the client role did not consume itself (rejections)."""

    level: str
    code: str
    description: str


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``next_event()`` when more bytes are needed before another event.
NEED_DATA = _NeedData()
