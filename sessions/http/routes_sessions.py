"""Routes for sessions (the ledger of publishes) and analytics over them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from sessions.http import schemas
from sessions.http.deps import ApiContext, Context, Paging, PagingParams, TimeRange, TimeRangeParams
from sessions.http.errors import ApiError, not_found
from sessions.http.views import analytics_view, session_view
from storage.models import SessionRecord, SessionStatus

router = APIRouter(tags=["sessions"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorBody, "description": "No such session"},
}

StatusFilter = Annotated[
    Literal["live", "reconnecting", "ended"] | None,
    Query(description="Only sessions with this status."),
]
StreamFilter = Annotated[
    str | None,
    Query(
        description="Only this stream's sessions: its id or name (an id wins over another "
        "stream's name equal to it; a deleted stream's id still selects its sessions)."
    ),
]


async def session_views(
    context: ApiContext, records: Sequence[SessionRecord]
) -> list[schemas.Session]:
    """Records as JSON, live ones replaced by their fresher in-memory versions."""
    live = context.live_by_id()
    fresh = [live.get(record.id, record) for record in records]
    playback = await context.playback_ids({record.stream_id for record in fresh})
    return [session_view(record, playback_id=playback[record.stream_id]) for record in fresh]


async def session_page(
    context: ApiContext,
    page: Paging,
    *,
    stream_id: str | None = None,
    status: SessionStatus | None = None,
    times: TimeRange | None = None,
) -> schemas.SessionPage:
    records, total = await context.store.list_sessions(
        stream_id=stream_id,
        status=status,
        since=None if times is None else times.since,
        until=None if times is None else times.until,
        offset=page.offset,
        limit=page.limit,
    )
    items = await session_views(context, records)
    return schemas.SessionPage(items=items, total=total, offset=page.offset, limit=page.limit)


@router.get(
    "/api/sessions",
    summary="List sessions",
    description="Sessions, newest first. Live sessions carry their freshest counters.",
)
async def list_sessions(
    context: Context,
    page: PagingParams,
    times: TimeRangeParams,
    status: StatusFilter = None,
    stream_id: StreamFilter = None,
) -> schemas.SessionPage:
    stream = await context.stream_filter(stream_id)
    return await session_page(context, page, stream_id=stream, status=status, times=times)


@router.get("/api/sessions/{session_id}", summary="Get a session", responses=_NOT_FOUND)
async def get_session(context: Context, session_id: str) -> schemas.Session:
    record = context.live_session_by_id(session_id) or await context.store.get_session(session_id)
    if record is None:
        raise not_found("session", session_id)
    return (await session_views(context, [record]))[0]


@router.post(
    "/api/sessions/{session_id}/kick",
    summary="End a live session",
    description='Disconnects the publisher; the session ends with end_reason "kicked".',
    responses={
        **_NOT_FOUND,
        409: {"model": schemas.ErrorBody, "description": "The session is not live"},
    },
)
async def kick_session(context: Context, session_id: str) -> schemas.Kicked:
    if await context.live.kick(session_id):
        return schemas.Kicked(kicked=True, session_id=session_id)
    if await context.store.get_session(session_id) is None:
        raise not_found("session", session_id)
    raise ApiError(409, "not_live", f"session {session_id!r} is not live")


@router.get(
    "/api/analytics",
    summary="Totals over a time range",
    description="Session count, ingest seconds, bytes and viewer seconds.",
    tags=["analytics"],
)
async def analytics(
    context: Context, times: TimeRangeParams, stream_id: StreamFilter = None
) -> schemas.Analytics:
    totals = await context.store.analytics(
        since=times.since, until=times.until, stream_id=await context.stream_filter(stream_id)
    )
    return analytics_view(totals, since=times.since, until=times.until)
