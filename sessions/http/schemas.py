"""The JSON the operators' API speaks, as pydantic models (they make ``/openapi.json``).

Times are ISO 8601 UTC strings with milliseconds; durations are float seconds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ingest import profiles as rules
from ingest.rtmp.url import MAX_LENGTH as MAX_URL_LENGTH
from ingest.rtmp.url import URL_PATTERN
from sessions.streams import MAX_NAME_LENGTH, NAME_PATTERN

_TIME = "ISO 8601 UTC with milliseconds, e.g. 2026-11-21T19:24:10.123Z"


# --- requests -----------------------------------------------------------------------------

#: What a name must be, for the document; :func:`sessions.streams.check_name` enforces it
#: (with a readable message).
_NAME_RULES: dict[str, Any] = {
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": NAME_PATTERN,
}


def _range(low: float, high: float, **more: Any) -> dict[str, Any]:
    return {"minimum": low, "maximum": high, **more}


def _integral(value: object) -> object:
    """A number with no fraction as an int: JSON (and the document's "integer") does
    not tell 640 from 640.0. Anything else is left to the strict check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An integer in a JSON body (640 or 640.0; not "640", not true).
JsonInt = Annotated[int, BeforeValidator(_integral)]


class RenditionProfile(BaseModel):
    """One H.264 rendition of the stream's sessions (Livepeer's profile). A profile
    larger than a session's source is skipped for that session (never upscaled), with
    an issue."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        description="Names the rendition and its folder: letters, digits, '_' and '-', "
        "unique among the stream's profiles (whatever the case).",
        json_schema_extra={"minLength": 1, "maxLength": 32, "pattern": rules.NAME_PATTERN},
    )
    width: JsonInt = Field(
        description="Pixels, even.",
        json_schema_extra=_range(rules.MIN_SIZE, rules.MAX_WIDTH, multipleOf=2),
    )
    height: JsonInt = Field(
        description="Pixels, even.",
        json_schema_extra=_range(rules.MIN_SIZE, rules.MAX_HEIGHT, multipleOf=2),
    )
    bitrate: JsonInt = Field(
        description="Video bits per second.",
        json_schema_extra=_range(rules.MIN_BITRATE, rules.MAX_BITRATE),
    )
    fps: JsonInt = Field(
        0,
        description="Frames per second; 0 keeps the source's (a higher rate than the "
        "source's keeps the source's too).",
        json_schema_extra=_range(0, rules.MAX_FPS),
    )
    gop: float | None = Field(
        None,
        description="Seconds between keyframes; null: a keyframe wherever the source has "
        "one. Every rendition has a keyframe where each source segment starts.",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": rules.MAX_GOP},
    )


_PROFILES_DESCRIPTION = (
    f"The renditions each session gets besides the source (at most {rules.MAX_PROFILES}); "
    "none: the server's default ladder ([transcode] default_profiles), if any."
)


class StreamCreate(BaseModel):
    """A new stream."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        description=f"Unique, human-readable name (1-{MAX_NAME_LENGTH} characters, no "
        "control characters, not only white space, which is trimmed from both ends).",
        json_schema_extra=_NAME_RULES,
    )
    record: bool = Field(False, description="Keep a recording of every session.")
    profiles: list[RenditionProfile] = Field(
        default_factory=list,
        description=_PROFILES_DESCRIPTION,
        json_schema_extra={"maxItems": rules.MAX_PROFILES},
    )


class StreamUpdate(BaseModel):
    """Fields to change; those left out (or null) stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(
        None, description="New unique name (as on create).", json_schema_extra=_NAME_RULES
    )
    record: bool | None = Field(None, description="Keep a recording of every session.")
    disabled: bool | None = Field(
        None, description="A disabled stream refuses publishers and ends its live session."
    )
    profiles: list[RenditionProfile] | None = Field(
        None,
        description="Replaces the stream's profiles ([] removes them); sessions that start "
        "afterwards use them.",
        json_schema_extra={"maxItems": rules.MAX_PROFILES},
    )


#: What a target URL must be (:func:`ingest.rtmp.url.parse_rtmp_url` enforces it).
_URL_RULES: dict[str, Any] = {"maxLength": MAX_URL_LENGTH, "pattern": URL_PATTERN}
_URL_HELP = (
    "The target's server URL with its stream key: rtmp://host[:port]/app/key or "
    "rtmps://host[:port]/app/key (as YouTube, Twitch or Facebook give it). Shown with the "
    "key masked after this."
)


class TargetCreate(BaseModel):
    """A new multistream target of a stream."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        description=f"A name to show (1-{MAX_NAME_LENGTH} characters, as a stream's).",
        json_schema_extra=_NAME_RULES,
    )
    url: str = Field(description=_URL_HELP, json_schema_extra=_URL_RULES)
    disabled: bool = Field(False, description="A disabled target is not forwarded to.")


class TargetUpdate(BaseModel):
    """Fields to change; those left out (or null) stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, description="A new name.", json_schema_extra=_NAME_RULES)
    url: str | None = Field(None, description=_URL_HELP, json_schema_extra=_URL_RULES)
    disabled: bool | None = Field(
        None, description="A disabled target is not forwarded to (from the next session)."
    )


# --- responses ----------------------------------------------------------------------------


class Stream(BaseModel):
    """A stream: where one encoder publishes, authenticated by its stream key."""

    id: str
    name: str
    playback_id: str = Field(description="Random public id for playback; never the key.")
    ingest_url: str = Field(description="RTMP server URL to paste into the encoder.")
    ingest_urls: list[str] = Field(
        description="Every server URL publishers may use: the RTMP one, then the RTMPS one "
        "(rtmps://) when RTMPS is on."
    )
    playback_url: str | None = Field(description="HLS playback URL (null until available).")
    disabled: bool
    record: bool
    profiles: list[RenditionProfile] = Field(description=_PROFILES_DESCRIPTION)
    status: Literal["idle", "live", "reconnecting"] = Field(
        description="reconnecting: its session waits for the publisher to come back "
        "([sessions] reconnect_window)."
    )
    is_active: bool = Field(description="True while a session is live or reconnecting.")
    last_seen: str | None = Field(description=f"Last media received. {_TIME}")
    created_at: str = Field(description=_TIME)
    updated_at: str = Field(description=_TIME)


class StreamWithKey(Stream):
    """A stream with its key: only in the answers to create and rotate-key."""

    stream_key: str = Field(description="The secret stream key. Shown only this once.")


class MultistreamEntry(BaseModel):
    """What one of the stream's multistream targets got of the session."""

    target_id: str
    name: str = Field(description="The target's name when the session started.")
    status: Literal["connecting", "live", "retrying", "failed", "ended"] = Field(
        description="connecting: the first attempt is under way; live: publishing to it;"
        " retrying: an attempt failed or the connection was lost, tried again with backoff;"
        " failed: still retried, but 3 attempts in a row failed; ended: the session is over."
    )
    connected_seconds: float = Field(description="Seconds it was live, all connections.")
    bytes_sent: int = Field(description="RTMP bytes written to it.")
    reconnects: int = Field(description="Times it went live again after a failure or drop.")
    skipped_bytes: int = Field(
        description="Media bytes it did not get: while not live, and past the per-target"
        " buffer (skipped to the next keyframe)."
    )
    last_error: str | None = Field(
        description="Why its last attempt failed or its last connection ended (key masked)."
    )


class RenditionCounters(BaseModel):
    """One profile's rendition of a session."""

    name: str
    segments: int
    bytes: int
    frames: int = Field(description="Frames encoded.")
    dropped_frames: int = Field(
        description="Source frames left out because the renditions fell behind real time."
    )


class Gap(BaseModel):
    """A time a session waited for its publisher to reconnect."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: str = Field(alias="from", description=f"Last media packet before it. {_TIME}")
    to: str = Field(description=f"First media packet after it. {_TIME}")
    seconds: float


class Session(BaseModel):
    """One publish, from its first media packet to its last; a publisher that reconnects
    within the reconnect window continues it (``reconnects``, ``gaps``)."""

    id: str
    stream_id: str
    name: str
    status: Literal["live", "reconnecting", "ended"] = Field(
        description="reconnecting: its publisher's connection dropped and it waits for a "
        "reconnect ([sessions] reconnect_window)."
    )
    created_at: str = Field(description=f"First media packet. {_TIME}")
    ended_at: str | None = Field(description=f"Last media packet of an ended session. {_TIME}")
    last_seen: str = Field(description=f"Last media packet. {_TIME}")
    updated_at: str = Field(description=_TIME)
    duration: float = Field(
        description="Seconds from the first to the last media packet (gaps included)."
    )
    media_duration: float = Field(description="Span of the media timestamps, seconds.")
    ingest_seconds: float = Field(description="Seconds ingested: duration less the gaps.")
    reconnects: int = Field(description="Times its publisher reconnected and continued it.")
    gaps: list[Gap] = Field(description="Its gaps (one per reconnect), oldest first.")
    gap_seconds: float = Field(description="The gaps' seconds, summed.")
    bytes_received: int = Field(description="Bytes read from the publisher's connection.")
    media_bytes: int = Field(description="Audio and video payload bytes.")
    ingest_rate: float = Field(
        description="Bytes per second over the recent window while live; 0 once ended."
    )
    tracks: list[dict[str, Any]]
    is_healthy: bool = Field(description="True while no issue is open.")
    issues: list[dict[str, Any]] = Field(
        description="Coded problems, open and past, oldest first: code, message, "
        "started_at, ended_at (null while open), open, and at (= started_at). The live "
        "health codes are no_video, no_audio, bitrate_drop, fps_drop, ingest_drift and "
        "keyframe_interval; the segmenter's problems have their own codes and stay open."
    )
    end_reason: str | None
    err_message: str | None
    remote_addr: str
    encoder: str | None
    source_segments: int
    source_segments_duration: float
    source_bytes: int
    viewer_seconds: float
    record: bool
    recording_status: str | None
    recording_url: str | None
    mp4_url: str | None
    playback_id: str | None = Field(description="Its stream's playback id (null if deleted).")
    multistream: list[MultistreamEntry] = Field(
        description="One entry per enabled multistream target of the stream when the"
        " session started (empty: none)."
    )
    profiles: list[RenditionProfile] = Field(
        description="The rendition profiles this session produced (a profile larger than "
        "the source is skipped, with an issue); [] for the source only."
    )
    renditions: list[RenditionCounters] = Field(
        description="Each transcoded profile's counters (a failed one's too)."
    )
    transcoded_segments: int = Field(description="Rendition segments written, all profiles'.")
    transcoded_segments_duration: float = Field(
        description="Seconds of rendition segments written, all profiles'."
    )
    transcoded_bytes: int = Field(description="Bytes of rendition segments written.")
    outgoing_rate: float = Field(
        description="Rendition bytes written per second over the recent window while live; "
        "0 once ended."
    )


class Target(BaseModel):
    """Where a stream's sessions are forwarded."""

    id: str
    stream_id: str
    name: str
    url: str = Field(description="The target's URL with its stream key masked (****).")
    disabled: bool
    created_at: str = Field(description=_TIME)
    updated_at: str = Field(description=_TIME)


class Page(BaseModel):
    total: int = Field(description="Items matching, over all pages.")
    offset: int
    limit: int


class StreamPage(Page):
    items: list[Stream]


class SessionPage(Page):
    items: list[Session]


class TargetPage(Page):
    items: list[Target]


class StoreHealth(BaseModel):
    """The server's writes to its database (every process's, added up)."""

    status: Literal["ok", "degraded"] = Field(
        description='"degraded" while a write keeps failing (database locked, disk full, '
        "I/O error) and is retried; ingest and accounting go on meanwhile."
    )
    pending_writes: int = Field(description="Writes queued and not yet in the database.")
    last_error: str | None = Field(description="Why the failing write failed (while degraded).")
    dropped_writes: int = Field(
        description="Writes dropped since start because they failed in a way no retry can "
        "fix (each one is in the log as store_write_dropped)."
    )


class Health(BaseModel):
    status: Literal["ok", "starting", "degraded"]
    store: StoreHealth | None = None


class LoopLag(BaseModel):
    p50: float
    p99: float
    max: float


class ProcessStatus(BaseModel):
    index: int = Field(description="The process's number, from 0.")
    pid: int | None = Field(description="Its process id (null while it is being restarted).")
    live_sessions: int


class ServerStatus(BaseModel):
    version: str
    uptime_seconds: float
    live_sessions: int
    ingest_rate: float = Field(description="Bytes per second over all live sessions.")
    loop_lag_ms: LoopLag | None = Field(
        default=None,
        description="How late the event loop ran over the last minute, in milliseconds "
        "(with several processes, the worst of them).",
    )
    segment_availability_ms: LoopLag | None = Field(
        default=None,
        description="Milliseconds from a segment's last packet to the playlist listing it "
        "(recent segments; with several processes, the worst of them).",
    )
    processes: list[ProcessStatus] = Field(
        default_factory=list,
        description="The processes that accept publishers ([rtmp] processes) and how many "
        "live sessions each holds.",
    )
    store: StoreHealth | None = Field(
        default=None, description="The writes to the database, of every process."
    )


class Kicked(BaseModel):
    kicked: bool
    session_id: str


class Analytics(BaseModel):
    """Totals over the sessions created in [since, until) (null: unbounded)."""

    count: int
    total_ingest_seconds: float
    total_bytes: int
    total_viewer_seconds: float
    total_transcoded_seconds: float = Field(
        description="Seconds of rendition segments written (each profile's counted)."
    )
    since: str | None
    until: str | None


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable code, e.g. not_found.")
    message: str


class ErrorBody(BaseModel):
    """Every error answer."""

    error: ErrorDetail
