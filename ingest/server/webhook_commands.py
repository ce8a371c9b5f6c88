"""What ``rtmp-ingest webhooks ...`` does: the webhooks and their deliveries, as the API
manages them (:class:`sessions.webhooks.endpoints.Webhooks`). A secret is printed only by
``webhooks create`` and ``webhooks rotate-secret``."""

from __future__ import annotations

import argparse
import sys

from ingest.server.admin_commands import (
    Admin,
    CommandError,
    _confirm,
    emit,
    emit_page,
    empty_page,
    fields,
    format_utc,
    print_range,
    table,
    yes_no,
)
from sessions.http.timefmt import format_display_time
from sessions.http.views import as_json
from sessions.http.views_webhooks import delivery_view, webhook_view, webhook_with_secret_view
from sessions.webhooks.endpoints import InvalidWebhook, Webhooks
from storage import WebhookRecord


async def _webhook(admin: Admin, webhook_id: str) -> WebhookRecord:
    webhook = await admin.store.get_webhook(webhook_id)
    if webhook is None:
        raise CommandError(f"no webhook with id {webhook_id!r}")
    return webhook


def _block(webhook: WebhookRecord) -> str:
    return fields(
        [
            ("URL", webhook.url),
            ("ID", webhook.id),
            ("Events", ", ".join(webhook.events)),
            ("Description", webhook.description or "-"),
            ("Enabled", yes_no(not webhook.disabled)),
            ("Created", format_utc(webhook.created_at)),
            ("Updated", format_utc(webhook.updated_at)),
        ]
    )


def _print_secret(admin: Admin, webhook: WebhookRecord, what: str) -> None:
    if admin.as_json:
        emit(as_json(webhook_with_secret_view(webhook)))
        return
    print(f"{what} {webhook.url}.\n")
    print(_block(webhook))
    print(f"\nSecret: {webhook.secret}")
    print("\nThe secret is shown only now: receivers verify the Rtmp-Ingest-Signature with it.")


async def webhooks_create(admin: Admin, args: argparse.Namespace) -> None:
    try:
        webhook = await Webhooks(admin.store).create(
            args.url, args.event or None, description=args.description, disabled=args.disabled
        )
    except InvalidWebhook as exc:
        raise CommandError(str(exc)) from None
    _print_secret(admin, webhook, "Created a webhook for")


async def webhooks_list(admin: Admin, args: argparse.Namespace) -> None:
    records, total = await admin.store.list_webhooks(offset=args.offset, limit=args.limit)
    if admin.as_json:
        emit_page([as_json(webhook_view(w)) for w in records], total, args)
        return
    if empty_page("webhooks", records, total, args):
        return
    rows = [
        [w.id, w.url, yes_no(not w.disabled), str(len(w.events)), format_display_time(w.created_at)]
        for w in records
    ]
    print(table(["ID", "URL", "ENABLED", "EVENTS", "CREATED (UTC)"], rows))
    print_range(args.offset, len(records), total, "webhook")


async def webhooks_show(admin: Admin, args: argparse.Namespace) -> None:
    webhook = await _webhook(admin, args.id)
    if admin.as_json:
        emit(as_json(webhook_view(webhook)))
    else:
        print(_block(webhook))


async def _set_disabled(admin: Admin, webhook_id: str, disabled: bool) -> None:
    webhook = await Webhooks(admin.store).update(webhook_id, disabled=disabled)
    if webhook is None:
        raise CommandError(f"no webhook with id {webhook_id!r}")
    if admin.as_json:
        emit(as_json(webhook_view(webhook)))
    else:
        print(f"{'Disabled' if disabled else 'Enabled'} webhook {webhook.id} ({webhook.url}).")


async def webhooks_disable(admin: Admin, args: argparse.Namespace) -> None:
    await _set_disabled(admin, args.id, True)


async def webhooks_enable(admin: Admin, args: argparse.Namespace) -> None:
    await _set_disabled(admin, args.id, False)


async def webhooks_rotate_secret(admin: Admin, args: argparse.Namespace) -> None:
    webhook = await Webhooks(admin.store).rotate_secret(args.id)
    if webhook is None:
        raise CommandError(f"no webhook with id {args.id!r}")
    _print_secret(admin, webhook, "New secret for the webhook of")


async def webhooks_delete(admin: Admin, args: argparse.Namespace) -> None:
    webhook = await _webhook(admin, args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError(
                f"not deleting webhook {webhook.id} without confirmation: pass --yes"
            )
        if not _confirm(f"Delete webhook {webhook.id} ({webhook.url})?"):
            print("Not deleted.")
            return
    if not await Webhooks(admin.store).delete(webhook.id):
        raise CommandError(f"no webhook with id {args.id!r}")
    print(f"Deleted webhook {webhook.id}; its pending deliveries will not be sent.")


async def webhooks_deliveries(admin: Admin, args: argparse.Namespace) -> None:
    webhook = await _webhook(admin, args.id)
    records, total = await admin.store.list_deliveries(
        webhook.id, offset=args.offset, limit=args.limit
    )
    if admin.as_json:
        emit_page([as_json(delivery_view(d)) for d in records], total, args)
        return
    if empty_page("deliveries", records, total, args):
        return
    rows = []
    for d in records:
        last = d.attempt_log[-1] if d.attempt_log else None
        result = "-" if last is None else (last.error or str(last.status_code))
        rows.append(
            [
                d.event_id,
                d.event,
                d.state,
                str(d.attempts),
                result,
                format_display_time(d.created_at),
            ]
        )
    print(table(["EVENT ID", "EVENT", "STATE", "ATTEMPTS", "LAST RESULT", "CREATED (UTC)"], rows))
    print_range(args.offset, len(records), total, "deliverie")  # "deliveries"
