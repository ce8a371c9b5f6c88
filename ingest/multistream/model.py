"""What the forwarding engine takes and reports: targets, settings, per-target counters
and events, and the observer the session layer implements to hear of them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ingest.config import MultistreamConfig
from ingest.rtmp.url import RtmpUrl


@dataclass(frozen=True, slots=True)
class Target:
    """One destination of a stream: its id (the stored target's), a name to show, and its
    URL (with the key: ``repr`` and ``str`` mask it)."""

    id: str
    name: str
    url: RtmpUrl


_DEFAULTS = MultistreamConfig()


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    """``[multistream]``, as the engine uses it (the defaults and meanings are the
    configuration's: :class:`ingest.config.MultistreamConfig`)."""

    #: Bytes queued for one target before media is skipped up to the next keyframe.
    max_buffer: int = _DEFAULTS.max_buffer
    #: Seconds to connect and start publishing (TCP, TLS, handshake, commands).
    connect_timeout: float = _DEFAULTS.connect_timeout
    #: Seconds a live target may take no byte while bytes wait for it.
    stall_timeout: float = _DEFAULTS.stall_timeout
    #: Backoff between attempts: from ``retry_min``, doubled, up to ``retry_max`` seconds.
    retry_min: float = _DEFAULTS.retry_min
    retry_max: float = _DEFAULTS.retry_max
    #: Seconds the end of a session waits for a live target to take what is queued.
    drain_timeout: float = 5.0
    #: PEM CA certificates for ``rtmps://`` targets ("" = the system's).
    ca_file: str = _DEFAULTS.ca_file

    @classmethod
    def from_config(cls, config: MultistreamConfig) -> ForwardSettings:
        return cls(
            max_buffer=config.max_buffer,
            connect_timeout=config.connect_timeout,
            stall_timeout=config.stall_timeout,
            retry_min=config.retry_min,
            retry_max=config.retry_max,
            ca_file=config.ca_file,
        )


class TargetStatus(enum.StrEnum):
    """``connecting``: the first attempt is under way; ``live``: publishing to it;
    ``retrying``: a connection failed or was lost, and it is tried again (with backoff);
    ``failed``: still retried, but :data:`FAILED_AFTER` attempts in a row have failed;
    ``ended``: the session is over."""

    CONNECTING = "connecting"
    LIVE = "live"
    RETRYING = "retrying"
    FAILED = "failed"
    ENDED = "ended"


#: Attempts in a row that fail (without going live) before a target counts as failed.
FAILED_AFTER = 3


class EventKind(enum.StrEnum):
    """``connected``: the target went live (publishing); ``error``: an attempt failed
    before it did (refused, unreachable, timed out); ``disconnected``: a live connection
    ended (dropped, stalled, or the session ended)."""

    CONNECTED = "connected"
    ERROR = "error"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class TargetStats:
    """One target's counters (what the session ledger keeps per target)."""

    target_id: str
    name: str
    status: TargetStatus
    #: Seconds it was live (publishing), all connections together.
    connected_seconds: float
    #: RTMP bytes written to it (chunk headers and commands included; before TLS).
    bytes_sent: int
    #: Times it went live again after a connection was lost or failed.
    reconnects: int
    #: Media payload bytes of the source it did not get: while it was not live, waiting
    #: for a keyframe (after connecting again, or past ``max_buffer``), or queued when a
    #: connection was lost. (Sequence headers are not counted: a target that starts over
    #: gets the current ones first.)
    skipped_bytes: int
    #: Why its last attempt failed or its last connection ended (key masked).
    last_error: str | None
    #: Media payload bytes written to it.
    media_bytes: int
    #: Bytes waiting for it (queued, and in its connection's buffer).
    buffered_bytes: int


@dataclass(frozen=True, slots=True)
class TargetEvent:
    """Something that happened to one target, with its counters just after."""

    kind: EventKind
    target: Target
    stats: TargetStats
    #: Why (for ``error`` and ``disconnected``), key masked.
    reason: str | None = None


class MultistreamObserver(Protocol):
    """What the engine tells the session that owns it (called on the event loop)."""

    def target_event(self, event: TargetEvent) -> None: ...
