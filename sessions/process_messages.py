"""The messages between the main process and its worker processes (``[rtmp] processes``
above 1): one :class:`Op` per kind, one frozen dataclass per message, and their JSON.

Main process to worker: :class:`Hello` (first), :class:`Apply`, :class:`Stop`, and the
owner's orders, :class:`Close`. Worker to main process: :class:`Ready` or
:class:`Failed` (once, after the hello), :class:`Stats` (every flush), and what its
session manager asks of the owner (:class:`~sessions.remote.RemoteSessions`): the
requests :class:`Claim` (answered with a decision, and the reconnecting session the
publish continues, if any) and :class:`Disconnected` (answered with the session's end, or
none: kept open for a reconnect), and the notices :class:`Release`, :class:`Opened`,
:class:`Saved`, :class:`Suspended` and :class:`Ended`. The shell's channel
(:mod:`ingest.server.channel`) frames them and pairs requests with answers; both ends read
them in the order they were sent, which is what lets a worker's reports reach the owner
before the request that follows them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from ingest.hooks import Decision, PublishAttempt
from ingest.rtmp.events import EndCause
from sessions.owner import End
from storage.models import EndReason, SessionRecord

#: A message as it goes over the wire: a JSON object with its ``op``.
Wire = dict[str, Any]


class Op(StrEnum):
    HELLO = "hello"
    READY = "ready"
    FAILED = "failed"
    APPLY = "apply"
    STOP = "stop"
    STATS = "stats"
    CLAIM = "claim"
    RELEASE = "release"
    CLOSE = "close"
    OPENED = "opened"
    SAVED = "saved"
    DISCONNECTED = "disconnected"
    SUSPENDED = "suspended"
    ENDED = "ended"


class ChannelClosed(ConnectionError):
    """The other side went away before it answered."""


class RemoteError(RuntimeError):
    """The other side failed to handle a request."""


@dataclass(frozen=True, slots=True)
class Hello:
    """Main to worker, first: its index, the configuration, the playback base URL, and
    the listening sockets' descriptors under socket activation (RTMP's, then RTMPS')."""

    op: ClassVar[Op] = Op.HELLO
    index: int
    config: dict[str, Any]
    public_url: str
    fds: list[int]
    tls_fds: list[int]


@dataclass(frozen=True, slots=True)
class Ready:
    """Worker to main: listening, on these addresses (RTMP's, and RTMPS' when on)."""

    op: ClassVar[Op] = Op.READY
    addresses: list[str]
    tls_addresses: list[str]


@dataclass(frozen=True, slots=True)
class Failed:
    """Worker to main: it cannot listen, and why."""

    op: ClassVar[Op] = Op.FAILED
    error: str


@dataclass(frozen=True, slots=True)
class Apply:
    """Main to worker: a reloaded configuration (the worker applies what can change)."""

    op: ClassVar[Op] = Op.APPLY
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Stop:
    """Main to worker: stop gracefully."""

    op: ClassVar[Op] = Op.STOP


@dataclass(frozen=True, slots=True)
class Stats:
    """Worker to main, every flush: its loop lag, segment availability, store writes and
    metrics."""

    op: ClassVar[Op] = Op.STATS
    loop_lag: dict[str, float] | None
    availability: dict[str, float] | None
    store: dict[str, Any]
    #: Its counters for ``GET /metrics`` (:meth:`sessions.metrics.ProcessMetrics.to_dict`).
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Claim:
    """Worker to main, a request: authorize the publish and grant its stream to the
    worker's connection (:meth:`sessions.owner.Owner.claim`); answered with the decision
    (:func:`decision_to_wire`)."""

    op: ClassVar[Op] = Op.CLAIM
    attempt: PublishAttempt


@dataclass(frozen=True, slots=True)
class Release:
    """Worker to main: the publish claimed on ``conn`` never started."""

    op: ClassVar[Op] = Op.RELEASE
    conn: int


@dataclass(frozen=True, slots=True)
class Close:
    """Main to worker: the owner ends the publish on ``conn`` (as ``reason``)."""

    op: ClassVar[Op] = Op.CLOSE
    conn: int
    reason: EndReason
    why: str


@dataclass(frozen=True, slots=True)
class Opened:
    """Worker to main: the publish on ``conn`` opened its session."""

    op: ClassVar[Op] = Op.OPENED
    conn: int
    record: SessionRecord


@dataclass(frozen=True, slots=True)
class Saved:
    """Worker to main, every flush: its live sessions with their counters."""

    op: ClassVar[Op] = Op.SAVED
    records: list[SessionRecord]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Worker to main, a request: the publish on ``conn`` is over; answered with how its
    session ends (:func:`end_to_wire`)."""

    op: ClassVar[Op] = Op.DISCONNECTED
    conn: int
    cause: EndCause
    reason: str


@dataclass(frozen=True, slots=True)
class Suspended:
    """Worker to main: the session the owner kept open for a reconnect is as the
    publish that dropped left it (:meth:`sessions.owner.Owner.suspended`)."""

    op: ClassVar[Op] = Op.SUSPENDED
    record: SessionRecord


@dataclass(frozen=True, slots=True)
class Ended:
    """Worker to main: the session's end is in the store."""

    op: ClassVar[Op] = Op.ENDED
    session: str


Message = (
    Hello
    | Ready
    | Failed
    | Apply
    | Stop
    | Stats
    | Claim
    | Release
    | Close
    | Opened
    | Saved
    | Disconnected
    | Suspended
    | Ended
)

_CLASSES: dict[Op, type[Message]] = {
    cls.op: cls
    for cls in (
        Hello,
        Ready,
        Failed,
        Apply,
        Stop,
        Stats,
        Claim,
        Release,
        Close,
        Opened,
        Saved,
        Disconnected,
        Suspended,
        Ended,
    )
}


def _record(data: Wire) -> SessionRecord:
    record = SessionRecord(**data)
    if record.end_reason is not None:
        record.end_reason = EndReason(record.end_reason)
    return record


#: How a message's fields that are not plain JSON are read back.
_READ: dict[type[Message], dict[str, Callable[[Any], Any]]] = {
    Claim: {"attempt": lambda data: PublishAttempt(**data)},
    Close: {"reason": EndReason},
    Opened: {"record": _record},
    Suspended: {"record": _record},
    Saved: {"records": lambda items: [_record(item) for item in items]},
    Disconnected: {"cause": EndCause},
}


def encode(message: Message) -> Wire:
    """The JSON object of ``message``."""
    return {"op": message.op.value, **dataclasses.asdict(message)}


def decode(data: Wire) -> Message:
    """The message a JSON object holds (``id``, a request's number, left out); raises
    ``ValueError`` for an unknown ``op`` and ``TypeError`` for missing or unknown fields."""
    cls = _CLASSES[Op(str(data.get("op")))]
    fields = {name: value for name, value in data.items() if name not in ("op", "id")}
    for name, read in _READ.get(cls, {}).items():
        if name in fields:
            fields[name] = read(fields[name])
    return cls(**fields)


#: The key of a claim's answer that carries the reconnecting session the publish continues.
CONTINUES = "continues"


def decision_to_wire(decision: Decision, continues: SessionRecord | None = None) -> Wire:
    """A claim's answer (the ``release`` callback stays behind), with the reconnecting
    session the publish is to continue, if any."""
    wire = {
        f.name: getattr(decision, f.name)
        for f in dataclasses.fields(decision)
        if f.name != "release"
    }
    if continues is not None:
        wire[CONTINUES] = dataclasses.asdict(continues)
    return wire


def decision_from_wire(data: Wire) -> tuple[Decision, SessionRecord | None]:
    """A claim's answer: the decision, and the session the publish continues (if any)."""
    fields = dict(data)
    continues = fields.pop(CONTINUES, None)
    return Decision(**fields), None if continues is None else _record(continues)


def end_to_wire(end: End | None) -> Wire | None:
    """A disconnect's answer (None: the session is kept open for a reconnect)."""
    return None if end is None else {"reason": end.reason.value, "error": end.error}


def end_from_wire(data: Wire | None) -> End | None:
    return None if data is None else End(EndReason(data["reason"]), data.get("error"))
