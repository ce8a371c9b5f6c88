"""The operators' subcommands of ``rtmp-ingest``: their arguments, and running them
against the same SQLite store as ``serve``.

``streams create|list|show|set-profiles|rotate-key|disable|enable|delete``, ``streams
targets list|add|disable|enable|delete``, ``sessions list|show`` and ``analytics``; a
stream is named by id or by name (REF). The commands themselves are in
:mod:`ingest.server.admin_commands` (and :mod:`ingest.server.admin_targets`).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from collections.abc import Callable

from ingest.config import Config
from ingest.server import admin_commands as cmd
from ingest.server import admin_targets as tgt
from ingest.server import webhook_commands as hooks
from sessions.http.deps import DEFAULT_LIMIT
from sessions.http.views import ingest_rtmps_url, ingest_url
from sessions.streams import Streams
from sessions.webhooks.events import ALL_EVENTS
from storage import Store
from storage.base import MAX_LIMIT

#: The top-level commands registered here (the rest are ``serve`` and ``check-config``).
#: How a profile is written on the command line (:func:`ingest.profiles.parse_profiles`).
PROFILE_FORM = "NAME:WxH:BITRATE[:FPS[:GOP]]"
COMMANDS = ("streams", "sessions", "analytics", "webhooks")

AddCommon = Callable[[argparse.ArgumentParser], None]


def _count(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _leaf(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: cmd.Command,
    add_common: AddCommon,
    *,
    json_output: bool = True,
) -> argparse.ArgumentParser:
    parser = group.add_parser(
        name, help=help_text, description=help_text[0].upper() + help_text[1:]
    )
    parser.set_defaults(handler=handler)
    add_common(parser)
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON (as the HTTP API)")
    return parser


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit",
        type=_count(1, MAX_LIMIT),
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N items (1-{MAX_LIMIT}, default {DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--offset", type=_count(0), default=0, metavar="N", help="skip the first N items"
    )


def _time_range(parser: argparse.ArgumentParser) -> None:
    """``--since``/``--until``, as the API's ``since``/``until``."""
    times = "ISO 8601 (e.g. 2026-11-21T19:24:10Z; naive means UTC) or epoch seconds"
    parser.add_argument(
        "--since", metavar="T", help=f"only sessions created at or after T: {times}"
    )
    parser.add_argument("--until", metavar="T", help="only sessions created before T")


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], add_common: AddCommon
) -> None:
    """Register :data:`COMMANDS`; *add_common* adds ``--config`` to each command."""
    streams = commands.add_parser("streams", help="create, list and change streams")
    group = streams.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    create = _leaf(
        group, "create", "create a stream and print its key", cmd.streams_create, add_common
    )
    create.add_argument("name", metavar="NAME", help="unique stream name")
    create.add_argument("--record", action="store_true", help="record its sessions")
    create.add_argument(
        "--profile",
        dest="profiles",
        action="append",
        default=[],
        metavar=PROFILE_FORM,
        help="a rendition of its sessions, e.g. 360p:640x360:800000 (repeat for a ladder)",
    )
    _paging(_leaf(group, "list", "list streams", cmd.streams_list, add_common))
    ref_help = "stream id or name"
    profiles = _leaf(
        group,
        "set-profiles",
        "replace a stream's rendition profiles (none given: remove them)",
        cmd.streams_set_profiles,
        add_common,
    )
    profiles.add_argument("ref", metavar="REF", help=ref_help)
    profiles.add_argument(
        "profiles", nargs="*", metavar=PROFILE_FORM, help="e.g. 360p:640x360:800000"
    )
    for name, help_text, handler, json_output in (
        ("show", "show a stream (never its key)", cmd.streams_show, True),
        (
            "rotate-key",
            "replace a stream's key and print the new one",
            cmd.streams_rotate_key,
            True,
        ),
        ("disable", "refuse a stream's publishers", cmd.streams_disable, True),
        ("enable", "accept a stream's publishers again", cmd.streams_enable, True),
        ("delete", "delete a stream (its sessions stay)", cmd.streams_delete, False),
    ):
        leaf = _leaf(group, name, help_text, handler, add_common, json_output=json_output)
        leaf.add_argument("ref", metavar="REF", help=ref_help)
        if name == "delete":
            leaf.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    _target_commands(group, add_common)

    sessions = commands.add_parser("sessions", help="list and show publish sessions")
    group = sessions.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    listing = _leaf(group, "list", "list sessions, newest first", cmd.sessions_list, add_common)
    listing.add_argument("--stream", metavar="REF", help="only this stream's sessions (id or name)")
    listing.add_argument(
        "--status",
        choices=("live", "reconnecting", "ended"),
        help="only sessions with this status",
    )
    _time_range(listing)
    _paging(listing)
    show = _leaf(group, "show", "show a session", cmd.sessions_show, add_common)
    show.add_argument("id", metavar="ID", help="session id")

    totals = _leaf(
        commands,
        "analytics",
        "totals over the sessions created in a time range (as GET /api/analytics)",
        cmd.analytics,
        add_common,
    )
    totals.add_argument("--stream", metavar="REF", help="only this stream's sessions (id or name)")
    _time_range(totals)
    _add_webhooks(commands, add_common)


def _add_webhooks(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], add_common: AddCommon
) -> None:
    webhooks = commands.add_parser("webhooks", help="manage webhooks and see their deliveries")
    group = webhooks.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    create = _leaf(
        group, "create", "add a webhook and print its secret", hooks.webhooks_create, add_common
    )
    create.add_argument("url", metavar="URL", help="where deliveries are POSTed")
    create.add_argument(
        "--event",
        action="append",
        choices=ALL_EVENTS,
        metavar="EVENT",
        help=f"an event to deliver (repeat for more; default: all but publish.rejected): "
        f"{', '.join(ALL_EVENTS)}",
    )
    create.add_argument("--description", default="", help="a note for people")
    create.add_argument("--disabled", action="store_true", help="create it disabled")
    _paging(_leaf(group, "list", "list webhooks", hooks.webhooks_list, add_common))
    for name, help_text, handler, json_output in (
        ("show", "show a webhook (never its secret)", hooks.webhooks_show, True),
        ("disable", "stop delivering to a webhook", hooks.webhooks_disable, True),
        ("enable", "deliver to a webhook again", hooks.webhooks_enable, True),
        (
            "rotate-secret",
            "give a webhook a new secret and print it",
            hooks.webhooks_rotate_secret,
            True,
        ),
        ("delete", "delete a webhook and its deliveries", hooks.webhooks_delete, False),
        (
            "deliveries",
            "list a webhook's deliveries, newest first",
            hooks.webhooks_deliveries,
            True,
        ),
    ):
        leaf = _leaf(group, name, help_text, handler, add_common, json_output=json_output)
        leaf.add_argument("id", metavar="ID", help="webhook id")
        if name == "delete":
            leaf.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        if name == "deliveries":
            _paging(leaf)


def _target_commands(
    streams: argparse._SubParsersAction[argparse.ArgumentParser], add_common: AddCommon
) -> None:
    """``streams targets ...`` (:mod:`ingest.server.admin_targets`)."""
    targets = streams.add_parser("targets", help="a stream's multistream targets")
    group = targets.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = _leaf(group, "list", "list a stream's targets", tgt.targets_list, add_common)
    listing.add_argument("ref", metavar="REF", help="stream id or name")
    _paging(listing)
    add = _leaf(group, "add", "add a target to a stream", tgt.targets_add, add_common)
    add.add_argument("ref", metavar="REF", help="stream id or name")
    add.add_argument("name", metavar="NAME", help="a name for the target")
    add.add_argument(
        "url",
        metavar="URL",
        help="rtmp:// or rtmps://host[:port]/app/KEY, or - to read it from standard input",
    )
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    for name, help_text, handler, json_output in (
        ("disable", "stop forwarding to a target", tgt.targets_disable, True),
        ("enable", "forward to a target again", tgt.targets_enable, True),
        ("delete", "delete a target", tgt.targets_delete, False),
    ):
        leaf = _leaf(group, name, help_text, handler, add_common, json_output=json_output)
        leaf.add_argument("ref", metavar="REF", help="stream id or name")
        leaf.add_argument("target", metavar="TARGET_ID", help="the target's id")


async def _run(config: Config, command: cmd.Command, args: argparse.Namespace) -> None:
    path = config.storage.database_path
    try:
        store = await Store.open(path, busy_timeout=config.storage.busy_timeout)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        raise cmd.CommandError(f"cannot open the database {path}: {exc}") from None
    try:
        as_json = bool(getattr(args, "json", False))
        admin = cmd.Admin(
            store, Streams(store), ingest_url(config), as_json, ingest_rtmps_url(config)
        )
        await command(admin, args)
    except sqlite3.Error as exc:
        raise cmd.CommandError(f"database error in {path}: {exc}") from None
    finally:
        await store.close()


def run(config: Config, args: argparse.Namespace) -> int:
    """Run a parsed command of :data:`COMMANDS`; returns the exit status."""
    command: cmd.Command = args.handler
    try:
        asyncio.run(_run(config, command, args))
    except cmd.CommandError as exc:
        print(f"rtmp-ingest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
