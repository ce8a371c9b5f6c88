"""The ``rtmp-ingest`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ingest import __version__
from ingest.config import Config, ConfigError, load_config
from ingest.logs import apply_log_config
from ingest.server import admin_cli
from ingest.server.eventloop import run_loop
from ingest.server.heap import limit_malloc_arenas


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtmp-ingest", description="Self-hosted RTMP ingest server."
    )
    parser.add_argument("--version", action="version", version=f"rtmp-ingest {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in (
        ("serve", "run the server (the default command)"),
        ("check-config", "validate the configuration and report every error"),
    ):
        _add_config(commands.add_parser(name, help=help_text))
    admin_cli.add_commands(commands, _add_config)
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("RTMP_INGEST_CONFIG"),
        help="TOML config file (default: $RTMP_INGEST_CONFIG, else built-in defaults)",
    )


def _load(path: str | None) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"rtmp-ingest: invalid configuration:\n{exc}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    config_path = getattr(args, "config", None) or os.environ.get("RTMP_INGEST_CONFIG")
    config = _load(config_path)
    if config is None:
        return 2
    if command == "check-config":
        print("configuration is valid")
        return 0
    if command in admin_cli.COMMANDS:
        return admin_cli.run(config, args)
    from ingest.server.app import serve

    apply_log_config(config.log)
    limit_malloc_arenas()
    try:
        run_loop(serve(config, config_path))
    except OSError as exc:
        print(f"rtmp-ingest: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
