"""Routes for a stream's multistream targets: add, list, show, change, delete.

A target's URL carries a third party's stream key: it is taken on create and change, and
every answer shows it masked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from sessions.http import schemas
from sessions.http.deps import ApiContext, Context, PagingParams
from sessions.http.errors import ApiError, not_found
from sessions.http.routes_streams import StreamRef
from sessions.http.views import target_view
from sessions.targets import InvalidTarget, Targets

router = APIRouter(tags=["targets"])

_STREAM_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorBody, "description": "No stream with this id or name"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorBody, "description": "No such stream, or no such target of it"},
}

TargetId = Annotated[str, Path(description="The target's id.")]


def _targets(context: ApiContext) -> Targets:
    assert context.targets is not None
    return context.targets


def _invalid(exc: InvalidTarget) -> ApiError:
    return ApiError(422, "invalid_request", str(exc))


@router.get(
    "/api/streams/{stream_ref}/targets",
    summary="The stream's multistream targets",
    description="Oldest first; URLs with their key masked.",
    responses=_STREAM_NOT_FOUND,
)
async def list_targets(
    context: Context, stream_ref: StreamRef, page: PagingParams
) -> schemas.TargetPage:
    stream = await context.stream(stream_ref)
    records, total = await context.store.list_targets(
        stream.id, offset=page.offset, limit=page.limit
    )
    items = [target_view(target) for target in records]
    return schemas.TargetPage(items=items, total=total, offset=page.offset, limit=page.limit)


@router.post(
    "/api/streams/{stream_ref}/targets",
    status_code=201,
    summary="Add a multistream target",
    description="Its sessions from the next one on are forwarded there (stream copy). The "
    "answer, like every later one, shows the URL with its key masked.",
    responses=_STREAM_NOT_FOUND,
)
async def create_target(
    context: Context, stream_ref: StreamRef, body: schemas.TargetCreate
) -> schemas.Target:
    stream = await context.stream(stream_ref)
    try:
        target = await _targets(context).create(
            stream.id, body.name, body.url, disabled=body.disabled
        )
    except InvalidTarget as exc:
        raise _invalid(exc) from None
    if target is None:
        raise not_found("stream", stream_ref)
    return target_view(target)


@router.get(
    "/api/streams/{stream_ref}/targets/{target_id}", summary="Get a target", responses=_NOT_FOUND
)
async def get_target(
    context: Context, stream_ref: StreamRef, target_id: TargetId
) -> schemas.Target:
    stream = await context.stream(stream_ref)
    target = await context.store.get_target(stream.id, target_id)
    if target is None:
        raise not_found("target", target_id)
    return target_view(target)


@router.patch(
    "/api/streams/{stream_ref}/targets/{target_id}",
    summary="Change a target",
    description="Rename it, give it a new URL, or disable or enable it.",
    responses=_NOT_FOUND,
)
async def update_target(
    context: Context, stream_ref: StreamRef, target_id: TargetId, body: schemas.TargetUpdate
) -> schemas.Target:
    stream = await context.stream(stream_ref)
    try:
        target = await _targets(context).update(
            stream.id, target_id, name=body.name, url=body.url, disabled=body.disabled
        )
    except InvalidTarget as exc:
        raise _invalid(exc) from None
    if target is None:
        raise not_found("target", target_id)
    return target_view(target)


@router.delete(
    "/api/streams/{stream_ref}/targets/{target_id}",
    status_code=204,
    summary="Delete a target",
    responses=_NOT_FOUND,
)
async def delete_target(context: Context, stream_ref: StreamRef, target_id: TargetId) -> Response:
    stream = await context.stream(stream_ref)
    if not await _targets(context).delete(stream.id, target_id):
        raise not_found("target", target_id)
    return Response(status_code=204)
