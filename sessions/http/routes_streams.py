"""Routes for streams: create, list, change, rotate the key, disable, delete.

A stream is addressed by its id or its name (as on the command line): ``{stream_ref}``
is looked up as an id first, then as a name, so an id wins over a name equal to it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from ingest.profiles import DuplicateProfileName, ProfileError
from sessions.http import schemas
from sessions.http.deps import ApiContext, Context, PagingParams
from sessions.http.errors import ApiError, not_found
from sessions.http.routes_sessions import StatusFilter, session_page, session_views
from sessions.http.views import stream_view, stream_with_key_view
from sessions.streams import InvalidName
from storage import StreamNameTaken
from storage.models import StreamRecord

router = APIRouter(tags=["streams"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorBody, "description": "No stream with this id or name"},
}
_NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {
        "model": schemas.ErrorBody,
        "description": "The name is taken (name_taken), or two profiles have the same "
        "name (profile_name_taken)",
    },
}

StreamRef = Annotated[
    str,
    Path(
        description="The stream's id or name (an id wins over another stream's name equal to it)."
    ),
]


def _view(context: ApiContext, stream: StreamRecord) -> schemas.Stream:
    session = context.live.live_session(stream.id)
    return stream_view(
        stream,
        ingest_url=context.ingest_urls,
        live=session is not None,
        playback_base=context.playback_base,
        reconnecting=session is not None and session.status == "reconnecting",
    )


def _with_key(context: ApiContext, stream: StreamRecord, key: str) -> schemas.StreamWithKey:
    session = context.live.live_session(stream.id)
    return stream_with_key_view(
        stream,
        key,
        ingest_url=context.ingest_urls,
        live=session is not None,
        playback_base=context.playback_base,
        reconnecting=session is not None and session.status == "reconnecting",
    )


def _name_taken(name: str) -> ApiError:
    return ApiError(409, "name_taken", f"a stream named {name!r} already exists")


def _invalid_name(exc: InvalidName) -> ApiError:
    return ApiError(422, "invalid_request", f"name: {exc}")


def _invalid_profiles(exc: ProfileError) -> ApiError:
    if isinstance(exc, DuplicateProfileName):
        return ApiError(409, "profile_name_taken", str(exc))
    return ApiError(422, "invalid_request", str(exc))


def _profiles(given: list[schemas.RenditionProfile]) -> list[dict[str, Any]]:
    return [profile.model_dump() for profile in given]


@router.get("/api/streams", summary="List streams")
async def list_streams(context: Context, page: PagingParams) -> schemas.StreamPage:
    records, total = await context.store.list_streams(offset=page.offset, limit=page.limit)
    items = [_view(context, stream) for stream in records]
    return schemas.StreamPage(items=items, total=total, offset=page.offset, limit=page.limit)


@router.post(
    "/api/streams",
    status_code=201,
    summary="Create a stream",
    description="The answer carries the stream key: it is shown only here and on rotate-key.",
    responses=_NAME_TAKEN,
)
async def create_stream(context: Context, body: schemas.StreamCreate) -> schemas.StreamWithKey:
    try:
        stream, key = await context.streams.create(
            body.name, record=body.record, profiles=_profiles(body.profiles)
        )
    except InvalidName as exc:
        raise _invalid_name(exc) from None
    except ProfileError as exc:
        raise _invalid_profiles(exc) from None
    except StreamNameTaken:
        raise _name_taken(body.name.strip()) from None
    return _with_key(context, stream, key)


@router.get("/api/streams/{stream_ref}", summary="Get a stream", responses=_NOT_FOUND)
async def get_stream(context: Context, stream_ref: StreamRef) -> schemas.Stream:
    return _view(context, await context.stream(stream_ref))


@router.patch(
    "/api/streams/{stream_ref}",
    summary="Change a stream",
    responses={**_NOT_FOUND, **_NAME_TAKEN},
)
async def update_stream(
    context: Context, stream_ref: StreamRef, body: schemas.StreamUpdate
) -> schemas.Stream:
    found = await context.stream(stream_ref)
    stream: StreamRecord | None = found
    if body.name is not None or body.record is not None or body.profiles is not None:
        try:
            stream = await context.streams.update(
                found.id,
                name=body.name,
                record=body.record,
                profiles=None if body.profiles is None else _profiles(body.profiles),
            )
        except InvalidName as exc:
            raise _invalid_name(exc) from None
        except ProfileError as exc:
            raise _invalid_profiles(exc) from None
        except StreamNameTaken:
            raise _name_taken((body.name or "").strip()) from None
    if body.disabled is not None and stream is not None:
        stream = await context.streams.set_disabled(found.id, body.disabled)
    if stream is None:
        raise not_found("stream", stream_ref)
    return _view(context, stream)


@router.delete(
    "/api/streams/{stream_ref}",
    status_code=204,
    summary="Delete a stream",
    description="Ends its live session; its past sessions stay in the ledger.",
    responses=_NOT_FOUND,
)
async def delete_stream(context: Context, stream_ref: StreamRef) -> Response:
    stream = await context.stream(stream_ref)
    if not await context.streams.delete(stream.id):
        raise not_found("stream", stream_ref)
    return Response(status_code=204)


@router.post(
    "/api/streams/{stream_ref}/rotate-key",
    summary="Replace the stream key",
    description="Answers with the new key (shown only here). A live publisher keeps going "
    "until it reconnects, which then needs the new key.",
    responses=_NOT_FOUND,
)
async def rotate_key(context: Context, stream_ref: StreamRef) -> schemas.StreamWithKey:
    rotated = await context.streams.rotate_key((await context.stream(stream_ref)).id)
    if rotated is None:
        raise not_found("stream", stream_ref)
    stream, key = rotated
    return _with_key(context, stream, key)


async def _set_disabled(context: ApiContext, stream_ref: str, disabled: bool) -> schemas.Stream:
    stream_id = (await context.stream(stream_ref)).id
    stream = await context.streams.set_disabled(stream_id, disabled)
    if stream is None:
        raise not_found("stream", stream_ref)
    return _view(context, stream)


@router.post(
    "/api/streams/{stream_ref}/disable",
    summary="Disable a stream",
    description='Refuses its publishers and ends its live session ("key_disabled").',
    responses=_NOT_FOUND,
)
async def disable_stream(context: Context, stream_ref: StreamRef) -> schemas.Stream:
    return await _set_disabled(context, stream_ref, True)


@router.post("/api/streams/{stream_ref}/enable", summary="Enable a stream", responses=_NOT_FOUND)
async def enable_stream(context: Context, stream_ref: StreamRef) -> schemas.Stream:
    return await _set_disabled(context, stream_ref, False)


@router.get(
    "/api/streams/{stream_ref}/sessions/active",
    summary="The stream's live session",
    responses={
        404: {"model": schemas.ErrorBody, "description": "No such stream, or it is not live"},
    },
)
async def active_session(context: Context, stream_ref: StreamRef) -> schemas.Session:
    stream = await context.stream(stream_ref)
    record = context.live.live_session(stream.id)
    if record is None:
        raise ApiError(404, "not_live", f"stream {stream_ref!r} is not live")
    return (await session_views(context, [record]))[0]


@router.get(
    "/api/streams/{stream_ref}/sessions",
    summary="The stream's sessions",
    description="Newest first.",
    responses=_NOT_FOUND,
)
async def stream_sessions(
    context: Context, stream_ref: StreamRef, page: PagingParams, status: StatusFilter = None
) -> schemas.SessionPage:
    stream = await context.stream(stream_ref)
    return await session_page(context, page, stream_id=stream.id, status=status)
