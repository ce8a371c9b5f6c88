"""``rtmp-ingest streams targets list|add|disable|enable|delete``: a stream's multistream
targets from the command line, as ``/api/streams/{ref}/targets`` manages them (the same
checks, the same JSON with ``--json``, the URL's key masked in everything printed).

A URL given as ``-`` is read from standard input, which keeps the target's key out of the
shell's history and the process list.
"""

from __future__ import annotations

import argparse
import sys

from ingest.server.admin_commands import (
    Admin,
    CommandError,
    emit,
    emit_page,
    empty_page,
    format_utc,
    print_range,
    table,
    yes_no,
)
from sessions.http.views import as_json, target_view
from sessions.targets import InvalidTarget, Targets, masked_url
from storage.models import TargetRecord


def _url(text: str) -> str:
    if text != "-":
        return text
    line = sys.stdin.readline().strip()
    if not line:
        raise CommandError("no URL on standard input")
    return line


def _show(admin: Admin, target: TargetRecord, what: str) -> None:
    if admin.as_json:
        emit(as_json(target_view(target)))
    else:
        print(f"{what} target {target.name!r} ({target.id}): {masked_url(target)}")


async def targets_list(admin: Admin, args: argparse.Namespace) -> None:
    stream = await admin.stream(args.ref)
    records, total = await admin.store.list_targets(stream.id, offset=args.offset, limit=args.limit)
    if admin.as_json:
        emit_page([as_json(target_view(t)) for t in records], total, args)
        return
    if empty_page("targets", records, total, args):
        return
    rows = [
        [t.name, t.id, masked_url(t), yes_no(not t.disabled), format_utc(t.created_at)]
        for t in records
    ]
    print(table(["NAME", "ID", "URL", "ENABLED", "CREATED"], rows))
    print_range(args.offset, len(records), total, "target")


async def targets_add(admin: Admin, args: argparse.Namespace) -> None:
    stream = await admin.stream(args.ref)
    try:
        target = await Targets(admin.store).create(
            stream.id, args.name, _url(args.url), disabled=args.disabled
        )
    except InvalidTarget as exc:
        raise CommandError(f"invalid target: {exc}") from None
    if target is None:
        raise CommandError(f"no stream named or with id {args.ref!r}")
    _show(admin, target, "Added")


async def _set_disabled(admin: Admin, args: argparse.Namespace, disabled: bool) -> None:
    stream = await admin.stream(args.ref)
    target = await Targets(admin.store).update(stream.id, args.target, disabled=disabled)
    if target is None:
        raise CommandError(f"stream {stream.name!r} has no target {args.target!r}")
    _show(admin, target, "Disabled" if disabled else "Enabled")


async def targets_disable(admin: Admin, args: argparse.Namespace) -> None:
    await _set_disabled(admin, args, True)


async def targets_enable(admin: Admin, args: argparse.Namespace) -> None:
    await _set_disabled(admin, args, False)


async def targets_delete(admin: Admin, args: argparse.Namespace) -> None:
    stream = await admin.stream(args.ref)
    if not await Targets(admin.store).delete(stream.id, args.target):
        raise CommandError(f"stream {stream.name!r} has no target {args.target!r}")
    print(f"Deleted target {args.target} of stream {stream.name!r}.")
