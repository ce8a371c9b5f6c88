"""The rows the store keeps, as plain dataclasses (no SQL here; see :mod:`storage.store`).

Times are float seconds since the Unix epoch (UTC). Stream keys are never stored: only
``key_hash`` (see :func:`hash_key`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

#: ``reconnecting``: its publisher's connection dropped and the reconnect window is open
#: (``[sessions] reconnect_window``); a publish on its stream within it continues it.
SessionStatus = Literal["live", "reconnecting", "ended"]


class EndReason(StrEnum):
    """Every way a session can end (design: "Every session ends exactly once with an
    end_reason"); stored and shown as these strings."""

    #: The encoder said it stopped (``FCUnpublish``, ``deleteStream``, ``closeStream``).
    UNPUBLISHED = "unpublished"
    #: The connection closed or reset, or the peer broke the protocol.
    DISCONNECTED = "disconnected"
    #: Nothing arrived for ``rtmp.idle_timeout`` seconds.
    TIMEOUT = "timeout"
    #: A new publisher took the stream over.
    REPLACED = "replaced"
    #: An operator ended it.
    KICKED = "kicked"
    #: The stream was disabled or deleted while live.
    KEY_DISABLED = "key_disabled"
    #: The server stopped.
    SHUTDOWN = "shutdown"
    #: The server (or the worker process that had it) died; closed at its last flush.
    SERVER_RESTART = "server_restart"


def hash_key(key: str) -> str:
    """The stored form of a stream key. Keys are random with at least 128 bits of entropy,
    so one SHA-256 is enough: there is nothing to brute-force from the hash."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StreamRecord:
    id: str
    name: str
    key_hash: str
    playback_id: str
    disabled: bool
    record: bool
    created_at: float
    updated_at: float
    last_seen: float | None = None
    #: Rendition profiles as JSON objects (checked by the session layer before they are
    #: stored); empty: none set.
    profiles: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """A stream's multistream target. ``url`` holds the target's stream key: it is left
    out of ``repr`` (and shown masked by the API)."""

    id: str
    stream_id: str
    name: str
    url: str = field(repr=False)
    disabled: bool
    created_at: float
    updated_at: float


@dataclass(slots=True)
class SessionRecord:
    """One publish. Mutable: the session layer updates counters in memory and the store
    persists them in batches."""

    id: str
    stream_id: str
    name: str
    created_at: float
    last_seen: float
    updated_at: float
    status: SessionStatus = "live"
    ended_at: float | None = None
    end_reason: EndReason | None = None
    err_message: str | None = None
    remote_addr: str = ""
    encoder: str | None = None
    #: Seconds from the first to the last media packet, as received.
    duration: float = 0.0
    #: Span of the media timestamps (wrap-safe), seconds.
    media_duration: float = 0.0
    #: Seconds the stream was being ingested: ``duration`` less the gaps.
    ingest_seconds: float = 0.0
    #: Bytes read from the publisher's socket (chunk headers, commands, handshake included).
    bytes_received: int = 0
    #: Audio/video message payload bytes, all tracks together.
    media_bytes: int = 0
    #: Bytes per second over the recent window.
    ingest_rate: float = 0.0
    #: One dict per track: kind, track_id, codec, width, height, fps, sample_rate,
    #: channels, bitrate, bytes, frames.
    tracks: list[dict[str, Any]] = field(default_factory=list)
    #: True while no issue is open.
    is_healthy: bool = True
    #: Coded problems: {"code": ..., "message": ..., "at": ...}; the live health checks'
    #: also have "started_at" (= "at") and "ended_at" (None while open). Entries without
    #: "ended_at" (the segmenter's) stay open.
    issues: list[dict[str, Any]] = field(default_factory=list)
    source_segments: int = 0
    source_segments_duration: float = 0.0
    source_bytes: int = 0
    viewer_seconds: float = 0.0
    record: bool = False
    recording_status: str | None = None
    recording_url: str | None = None
    mp4_url: str | None = None
    #: One dict per multistream target the session was forwarded to: target_id, name,
    #: status, connected_seconds, bytes_sent, reconnects, skipped_bytes, last_error.
    multistream: list[dict[str, Any]] = field(default_factory=list)
    #: The rendition profiles the session produced (each as a stream sets it: name,
    #: width, height, bitrate, fps, gop), in the stream's order.
    profiles: list[dict[str, Any]] = field(default_factory=list)
    #: One dict per profile that was transcoded: name, segments, bytes, frames,
    #: dropped_frames.
    renditions: list[dict[str, Any]] = field(default_factory=list)
    #: Rendition segments written, every profile's together, their seconds and bytes.
    transcoded_segments: int = 0
    transcoded_segments_duration: float = 0.0
    transcoded_bytes: int = 0
    #: Rendition bytes written per second over the recent window.
    outgoing_rate: float = 0.0
    #: Times its publisher came back within the reconnect window and continued it.
    reconnects: int = 0
    #: Its gaps, oldest first: {"from": last packet before, "to": first packet after (epoch
    #: seconds), "seconds": to - from}.
    gaps: list[dict[str, Any]] = field(default_factory=list)
    #: The gaps' seconds, summed.
    gap_seconds: float = 0.0

    @property
    def reconnecting(self) -> bool:
        return self.status == "reconnecting"


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One line of the event log: publish attempts, rejections, session start/end."""

    id: int
    at: float
    kind: str
    stream_id: str | None = None
    session_id: str | None = None
    remote_addr: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Analytics:
    count: int
    total_ingest_seconds: float
    total_bytes: int
    total_viewer_seconds: float
    #: Seconds of rendition segments written (every profile's counted).
    total_transcoded_seconds: float = 0.0
