"""What the routes depend on: the live-session manager's interface, the shared context,
and the query parameters several routes take (paging, time ranges), each declared with
its type and range once, so that every route checks it the same way and the OpenAPI
document says what is accepted. (The admin token is checked in front of the routes, by
:mod:`sessions.http.guard`.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Query, Request

from ingest.config import Config
from sessions.http.errors import ApiError, bad_parameter
from sessions.http.timefmt import MAX_TIME, MIN_TIME, parse_optional_time
from sessions.streams import Streams
from sessions.targets import Targets
from sessions.webhooks.endpoints import Webhooks
from storage import Store
from storage.base import MAX_LIMIT, MAX_OFFSET
from storage.models import SessionRecord, StreamRecord

#: Items per page when a list asks for no ``limit`` (the command line's too).
DEFAULT_LIMIT = 50


class LiveSessions(Protocol):
    """The server's session manager, as the API sees it."""

    #: Epoch seconds the server started (for uptime).
    started_at: float

    def live_sessions(self) -> list[SessionRecord]:
        """The live sessions' in-memory records (fresher counters than the store's)."""
        ...

    def live_session(self, stream_id: str) -> SessionRecord | None:
        """The live session of *stream_id*, if it is live."""
        ...

    def total_ingest_rate(self) -> float:
        """Bytes per second over all live sessions."""
        ...

    async def kick(self, session_id: str) -> bool:
        """End a live session as ``kicked``; False if it is not live."""
        ...


@dataclass(slots=True)
class ApiContext:
    """Everything a request handler needs, built once by ``create_app``."""

    store: Store
    streams: Streams
    live: LiveSessions
    config: Config
    ingest_url: str
    version: str
    #: RTMP, then RTMPS when it is on.
    ingest_urls: list[str] = field(default_factory=list)
    #: The streams' multistream targets (made over ``store`` when not given).
    targets: Targets | None = None
    clock: Callable[[], float] = field(default=time.time)
    #: Base URL of the playback routes, when HLS playback is served.
    playback_base: str | None = None
    #: The webhooks (made over ``store`` when not given).
    webhooks: Webhooks | None = None

    def live_by_id(self) -> dict[str, SessionRecord]:
        return {session.id: session for session in self.live.live_sessions()}

    def live_session_by_id(self, session_id: str) -> SessionRecord | None:
        for session in self.live.live_sessions():
            if session.id == session_id:
                return session
        return None

    async def stream(self, ref: str) -> StreamRecord:
        """The stream *ref* names (an id, or else a name), or a 404."""
        stream = await self.streams.resolve(ref)
        if stream is None:
            raise ApiError(404, "not_found", f"no stream with id or name {ref!r}")
        return stream

    async def stream_filter(self, ref: str | None) -> str | None:
        """The stream id a ``stream_id`` filter means: the id of the stream *ref* names,
        or *ref* itself (a deleted stream's id still selects its sessions)."""
        if ref is None:
            return None
        stream = await self.streams.resolve(ref)
        return ref if stream is None else stream.id

    async def playback_ids(self, stream_ids: set[str]) -> dict[str, str | None]:
        """The playback id of each stream (None for a deleted one)."""
        found: dict[str, str | None] = {}
        for stream_id in stream_ids:
            stream: StreamRecord | None = await self.store.get_stream(stream_id)
            found[stream_id] = None if stream is None else stream.playback_id
        return found


def get_context(request: Request) -> ApiContext:
    context = request.app.state.context
    assert isinstance(context, ApiContext)
    return context


Context = Annotated[ApiContext, Depends(get_context)]


# --- query parameters ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paging:
    offset: int
    limit: int


def paging(
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1-{MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
) -> Paging:
    return Paging(offset, limit)


PagingParams = Annotated[Paging, Depends(paging)]


@dataclass(frozen=True, slots=True)
class TimeRange:
    since: float | None
    until: float | None


_TIME_HELP = (
    "ISO 8601 (RFC 3339 date-time, e.g. 2026-11-21T19:24:10Z; without an offset it means "
    "UTC) or epoch seconds, in the years 1 to 9999."
)
#: What a time parameter takes, for the OpenAPI document (see :func:`parse_time`).
_TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": MIN_TIME, "maximum": MAX_TIME},
        {"type": "string", "format": "date-time"},
    ]
}


def _time_query(what: str) -> Any:
    return Query(description=f"{what} {_TIME_HELP}", json_schema_extra=_TIME_SCHEMA)


def time_range(
    since: Annotated[str | None, _time_query("From this time (included).")] = None,
    until: Annotated[str | None, _time_query("Up to this time (excluded).")] = None,
) -> TimeRange:
    """The range [since, until); one that ends before it starts selects nothing."""
    try:
        start = parse_optional_time(since)
    except ValueError as exc:
        raise bad_parameter(f"since: {exc}") from None
    try:
        end = parse_optional_time(until)
    except ValueError as exc:
        raise bad_parameter(f"until: {exc}") from None
    return TimeRange(start, end)


TimeRangeParams = Annotated[TimeRange, Depends(time_range)]
