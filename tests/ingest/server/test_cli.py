"""The ``rtmp-ingest`` command as an operator runs it: a real process, real signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.support.media import make_flv, publish_with_ffmpeg
from tests.support.server import ROOT, serve_config, start_server


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


@pytest.mark.slow
def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    example = ROOT / "config.example.toml"
    code, out, _ = _run("check-config", "--config", str(example))
    assert code == 0
    assert "valid" in out


@pytest.mark.slow
def test_check_config_reports_every_error_at_once(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[rtmp]\nidle_timeout = -1\nchunk_size = 7\n[log]\nlevel = "loud"\n')
    code, _, err = _run("check-config", "--config", str(config))
    assert code == 2
    assert "rtmp.idle_timeout" in err
    assert "rtmp.chunk_size" in err
    assert "log.level" in err


@pytest.mark.slow
def test_environment_overrides_reach_check_config() -> None:
    code, _, err = _run("check-config", env={"RTMP_INGEST_RTMP_IDLE_TIMEOUT": "zero"})
    assert code == 2
    assert "RTMP_INGEST_RTMP_IDLE_TIMEOUT" in err


@pytest.mark.slow
def test_serve_exits_with_a_reason_when_the_http_port_is_taken(tmp_path: Path) -> None:
    """uvicorn's own ``sys.exit`` on a failed bind used to tear the loop down mid-task and
    leave the process hanging, deaf to SIGTERM."""
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = serve_config(tmp_path, http_listen=f"127.0.0.1:{port}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError("serve hung after its HTTP port was found taken") from None
    assert proc.returncode == 1
    assert f"the HTTP API could not listen on 127.0.0.1:{port}" in err, err


@pytest.mark.slow
async def test_serve_on_a_fresh_data_dir_prints_the_default_stream_once(
    tmp_path: Path,
) -> None:
    config = serve_config(tmp_path)
    proc, port, lines = await start_server(config)
    try:
        text = "".join(lines)
        assert "Server:     rtmp://ingest.example/live" in text
        key = re.search(r"Stream Key: (\S+)", text)
        assert key, text
        source = make_flv(tmp_path / "clip.flv", seconds=1)
        url = f"rtmp://127.0.0.1:{port}/live/{key.group(1)}"
        assert await publish_with_ffmpeg(source, url) == 0
        await asyncio.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert proc.stderr is not None
    logs = (await proc.stderr.read()).decode()
    assert "event=publish_started" in logs
    assert re.search(r"event=session_ended .*end_reason=unpublished", logs), logs
    assert key.group(1) not in logs, "stream keys never appear in logs"
    token = (tmp_path / "data" / "admin_token").stat()
    assert token.st_mode & 0o777 == 0o600
    # A second start finds the stream and prints no key.
    proc, _, lines = await start_server(config)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert "Stream Key" not in "".join(lines)
