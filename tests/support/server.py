"""The real server for the tests that run it as an operator does: a config file, and
``rtmp-ingest serve`` in a process of its own."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import IO

#: The repository's root (config.example.toml, deploy/, scripts/).
ROOT = Path(__file__).resolve().parents[2]


async def start_server(
    config: Path, stderr: IO[bytes] | int = asyncio.subprocess.PIPE, module: str = "ingest"
) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """Start ``rtmp-ingest serve`` (run as ``python -m module``); return it, its RTMP port
    and the stdout lines before it (its log goes to *stderr*: a pipe, or a file for a long
    log)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, "server exited before it was ready"
            lines.append(line)
            match = re.search(r"RTMP on [\d.]+:(\d+)", line)
            if match:
                return proc, int(match.group(1)), lines


def serve_config(
    tmp_path: Path, http_listen: str = "127.0.0.1:0", reconnect_window: float = 0.0
) -> Path:
    """A config for ``serve``. ``reconnect_window`` is 0 here, not the server's default of
    10 s: most tests end a publish and expect its session to end at once; the tests of
    the reconnect window set it."""
    config = tmp_path / "config.toml"
    lines = [
        "[sessions]",
        f"reconnect_window = {reconnect_window}",
        "[rtmp]",
        'listen = "127.0.0.1:0"',
        "[http]",
        f'listen = "{http_listen}"',
        'public_rtmp_url = "rtmp://ingest.example/live"',
        "[storage]",
        f'data_dir = "{tmp_path / "data"}"',
    ]
    config.write_text("\n".join(lines) + "\n")
    return config
