"""The ``rtmp-ingest`` command as an operator runs it: a real process, real signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from tests.support.media import make_flv, publish_with_ffmpeg


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    code, out, _ = _run("check-config", "--config", str(example))
    assert code == 0
    assert "valid" in out


def test_check_config_reports_every_error_at_once(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[rtmp]\nidle_timeout = -1\nchunk_size = 7\n[log]\nlevel = "loud"\n')
    code, _, err = _run("check-config", "--config", str(config))
    assert code == 2
    assert "rtmp.idle_timeout" in err
    assert "rtmp.chunk_size" in err
    assert "log.level" in err


def test_environment_overrides_reach_check_config() -> None:
    code, _, err = _run("check-config", env={"RTMP_INGEST_RTMP_IDLE_TIMEOUT": "zero"})
    assert code == 2
    assert "RTMP_INGEST_RTMP_IDLE_TIMEOUT" in err


async def test_serve_accepts_a_publisher_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[rtmp]\nlisten = "127.0.0.1:0"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ingest",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"rtmp://[\d.]+:(\d+)/live", line)
        assert match, line
        source = make_flv(tmp_path / "clip.flv", seconds=1)
        url = f"rtmp://127.0.0.1:{match.group(1)}/live/secret-key-123"
        assert await publish_with_ffmpeg(source, url) == 0
        await asyncio.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    logs = (await proc.stderr.read()).decode()
    assert "event=publish_started" in logs
    assert re.search(r"event=publish_ended .*cause=unpublished", logs), logs
    assert "secret-key-123" not in logs, "stream keys never appear in logs"
