"""What the routes depend on: the live-session manager's interface, the shared context,
the admin bearer token, and the query parameters several routes take (paging, time
ranges)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ingest.config import Config
from sessions.http.errors import ApiError, bad_parameter
from sessions.http.timefmt import parse_optional_time
from sessions.streams import Streams
from storage import Store
from storage.models import SessionRecord, StreamRecord

#: Largest page a list answers with.
MAX_LIMIT = 1000
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
    clock: Callable[[], float] = field(default=time.time)
    #: Base URL of the playback routes, when HLS playback is served.
    playback_base: str | None = None

    def live_by_id(self) -> dict[str, SessionRecord]:
        return {session.id: session for session in self.live.live_sessions()}

    def live_session_by_id(self, session_id: str) -> SessionRecord | None:
        for session in self.live.live_sessions():
            if session.id == session_id:
                return session
        return None

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


# --- the admin token (every route but /healthz) -------------------------------------------

_CHALLENGE = {"WWW-Authenticate": "Bearer"}

#: Reads the header and declares the scheme in the OpenAPI document; it never answers by
#: itself (``auto_error=False``), so that every 401 carries the usual error envelope.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="The admin token from the configuration (http.admin_token).",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def token_checker(admin_token: str) -> Callable[[Credentials], Awaitable[None]]:
    """A dependency that lets a request through only with the right bearer token
    (compared in constant time)."""
    if not admin_token:
        raise ValueError("the admin token must not be empty")
    expected = admin_token.encode("utf-8")

    async def require_token(credentials: Credentials) -> None:
        if credentials is None or not credentials.credentials:
            raise ApiError(
                401,
                "unauthorized",
                "missing bearer token (Authorization: Bearer <token>)",
                headers=_CHALLENGE,
            )
        presented = credentials.credentials.encode("utf-8")
        if not hmac.compare_digest(presented, expected):
            raise ApiError(401, "unauthorized", "invalid bearer token", headers=_CHALLENGE)

    return require_token


# --- query parameters ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paging:
    offset: int
    limit: int


def paging(
    offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
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


_TIME_HELP = "ISO 8601 (naive means UTC) or epoch seconds."


def time_range(
    since: Annotated[str | None, Query(description=f"From this time. {_TIME_HELP}")] = None,
    until: Annotated[str | None, Query(description=f"Up to this time. {_TIME_HELP}")] = None,
) -> TimeRange:
    try:
        start = parse_optional_time(since)
    except ValueError as exc:
        raise bad_parameter(f"since: {exc}") from None
    try:
        end = parse_optional_time(until)
    except ValueError as exc:
        raise bad_parameter(f"until: {exc}") from None
    if start is not None and end is not None and start > end:
        raise bad_parameter("since must not be after until")
    return TimeRange(start, end)


TimeRangeParams = Annotated[TimeRange, Depends(time_range)]
