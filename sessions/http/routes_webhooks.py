"""Routes for webhooks: add, list, show, change, delete, rotate the secret, and list the
deliveries with their attempts. The secret is in the answers to create and rotate-secret
only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from sessions.http import schemas
from sessions.http import schemas_webhooks as hooks
from sessions.http.deps import ApiContext, Context, PagingParams
from sessions.http.errors import ApiError, not_found
from sessions.http.views_webhooks import delivery_view, webhook_view, webhook_with_secret_view
from sessions.webhooks.endpoints import InvalidWebhook, Webhooks

router = APIRouter(tags=["webhooks"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorBody, "description": "No webhook with this id"},
}

WebhookId = Annotated[str, Path(description="The webhook's id.")]


def _webhooks(context: ApiContext) -> Webhooks:
    assert context.webhooks is not None
    return context.webhooks


def _invalid(exc: InvalidWebhook) -> ApiError:
    return ApiError(422, "invalid_request", str(exc))


@router.get("/api/webhooks", summary="The webhooks", description="Oldest first; no secrets.")
async def list_webhooks(context: Context, page: PagingParams) -> hooks.WebhookPage:
    records, total = await context.store.list_webhooks(offset=page.offset, limit=page.limit)
    return hooks.WebhookPage(
        items=[webhook_view(w) for w in records], total=total, offset=page.offset, limit=page.limit
    )


@router.post(
    "/api/webhooks",
    status_code=201,
    summary="Add a webhook",
    description="Events from now on are POSTed to its URL, signed with its secret (header "
    "Rtmp-Ingest-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, '<t>.<body>')>). "
    "The secret is in this answer only (rotate-secret makes a new one).",
)
async def create_webhook(context: Context, body: hooks.WebhookCreate) -> hooks.WebhookWithSecret:
    try:
        webhook = await _webhooks(context).create(
            body.url, body.events, description=body.description, disabled=body.disabled
        )
    except InvalidWebhook as exc:
        raise _invalid(exc) from None
    return webhook_with_secret_view(webhook)


@router.get("/api/webhooks/{webhook_id}", summary="Get a webhook", responses=_NOT_FOUND)
async def get_webhook(context: Context, webhook_id: WebhookId) -> hooks.Webhook:
    webhook = await context.store.get_webhook(webhook_id)
    if webhook is None:
        raise not_found("webhook", webhook_id)
    return webhook_view(webhook)


@router.patch(
    "/api/webhooks/{webhook_id}",
    summary="Change a webhook",
    description="A new URL, events or description, or disable or enable it.",
    responses=_NOT_FOUND,
)
async def update_webhook(
    context: Context, webhook_id: WebhookId, body: hooks.WebhookUpdate
) -> hooks.Webhook:
    try:
        webhook = await _webhooks(context).update(
            webhook_id,
            url=body.url,
            events=body.events,
            description=body.description,
            disabled=body.disabled,
        )
    except InvalidWebhook as exc:
        raise _invalid(exc) from None
    if webhook is None:
        raise not_found("webhook", webhook_id)
    return webhook_view(webhook)


@router.delete(
    "/api/webhooks/{webhook_id}",
    status_code=204,
    summary="Delete a webhook",
    description="With its deliveries: pending ones are not sent.",
    responses=_NOT_FOUND,
)
async def delete_webhook(context: Context, webhook_id: WebhookId) -> Response:
    if not await _webhooks(context).delete(webhook_id):
        raise not_found("webhook", webhook_id)
    return Response(status_code=204)


@router.post(
    "/api/webhooks/{webhook_id}/rotate-secret",
    summary="Give a webhook a new secret",
    description="Every delivery from now on, retries included, is signed with the new "
    "secret, which is in this answer only.",
    responses=_NOT_FOUND,
)
async def rotate_secret(context: Context, webhook_id: WebhookId) -> hooks.WebhookWithSecret:
    webhook = await _webhooks(context).rotate_secret(webhook_id)
    if webhook is None:
        raise not_found("webhook", webhook_id)
    return webhook_with_secret_view(webhook)


@router.get(
    "/api/webhooks/{webhook_id}/deliveries",
    summary="A webhook's deliveries",
    description="Newest first, each with its attempts (time, status code, latency, error).",
    responses=_NOT_FOUND,
)
async def list_deliveries(
    context: Context, webhook_id: WebhookId, page: PagingParams
) -> hooks.DeliveryPage:
    if await context.store.get_webhook(webhook_id) is None:
        raise not_found("webhook", webhook_id)
    records, total = await context.store.list_deliveries(
        webhook_id, offset=page.offset, limit=page.limit
    )
    return hooks.DeliveryPage(
        items=[delivery_view(d) for d in records],
        total=total,
        offset=page.offset,
        limit=page.limit,
    )
