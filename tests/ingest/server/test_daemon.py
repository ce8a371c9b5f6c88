"""The server as systemd runs it: readiness, watchdog, status, reload, stop, activation.

These run the real ``rtmp-ingest serve`` process (or, for the blocked-loop check, the real
``serve`` coroutine in this process) with a NOTIFY_SOCKET the test binds.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.media import make_flv
from ingest.config import load_config
from ingest.server.app import serve
from sessions.streams import Streams
from storage import Store
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.server import serve_config


class NotifyListener:
    """A unix datagram socket standing in for systemd's notification socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        return [line for _, message in self.messages for line in message.split("\n")]

    async def wait_for(self, pattern: str, timeout: float = 20.0, after: int = 0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines()[after:]:
                    if re.fullmatch(pattern, line):
                        return line
                await asyncio.sleep(0.02)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


async def _spawn(config: Path, env: dict[str, str], **kwargs: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "serve", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env}, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


async def _rtmp_port(proc: asyncio.subprocess.Process) -> int:
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while line := (await proc.stdout.readline()).decode():
            if match := re.search(r"RTMP on [\d.]+:(\d+)", line):
                return int(match.group(1))
    raise AssertionError("the server exited before listening")


@pytest.mark.slow
async def test_notify_ready_watchdog_status_reload_and_stop(
    tmp_path: Path, notify: NotifyListener
) -> None:
    config = serve_config(tmp_path)
    proc = await _spawn(config, {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
    await notify.wait_for("READY=1")
    ready_at = len(notify.lines())
    assert any(line.startswith("STATUS=0 live sessions") for line in notify.lines())
    await _rtmp_port(proc)
    # Watchdog pings at half the interval, from the event loop.
    await asyncio.sleep(1.0)
    assert notify.lines()[ready_at:].count("WATCHDOG=1") >= 3
    # The status line is refreshed on its own.
    await notify.wait_for(r"STATUS=\d+ live sessions, ingest .*", after=ready_at, timeout=8)

    before = len(notify.lines())
    proc.send_signal(signal.SIGHUP)
    await notify.wait_for("RELOADING=1", after=before)
    monotonic = await notify.wait_for(r"MONOTONIC_USEC=\d+", after=before)
    assert abs(int(monotonic.split("=")[1]) / 1e6 - time.monotonic()) < 10
    reloading = notify.lines().index("RELOADING=1", before)
    await notify.wait_for("READY=1", after=reloading)

    before = len(notify.lines())
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert "STOPPING=1" in notify.lines()[before:]


async def test_blocked_event_loop_stops_the_watchdog(
    tmp_path: Path, notify: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    config = load_config(serve_config(tmp_path))
    server = asyncio.ensure_future(serve(config))
    await notify.wait_for("READY=1")
    await asyncio.sleep(0.5)
    blocked_from = time.monotonic()
    time.sleep(1.0)  # the event loop is stuck here
    blocked_to = time.monotonic()
    await asyncio.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(server, 20)
    pings = [at for at, message in notify.messages if message == "WATCHDOG=1"]
    assert [at for at in pings if blocked_from + 0.05 < at < blocked_to] == []
    assert [at for at in pings if at < blocked_from], "pinged before the block"
    assert [at for at in pings if at > blocked_to + 0.05], "pinged again after it"


@pytest.mark.slow
async def test_sigterm_ends_live_sessions_as_shutdown(tmp_path: Path) -> None:
    config = serve_config(tmp_path)
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    stream, key = await Streams(store).create("cam", record=True)
    await store.close()
    proc = await _spawn(config, {})
    port = await _rtmp_port(proc)
    source = make_flv(tmp_path / "clip.flv", seconds=30)
    publisher = await start_ffmpeg(
        source, f"rtmp://127.0.0.1:{port}/live/{key}", realtime=True, quiet=True
    )
    await asyncio.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    stopped_at = time.time()
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    await asyncio.wait_for(publisher.wait(), 20)
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    try:
        (session,), _ = await store.list_sessions()
        assert session.end_reason == "shutdown"
        assert session.ended_at is not None
        assert stopped_at - 0.5 < session.ended_at <= stopped_at + 0.1
        assert session.duration == pytest.approx(session.ended_at - session.created_at, abs=0.01)
        assert 1.5 < session.duration < 3.5
        assert await store.integrity_check() == "ok"
        # Playlists and the recording were finished before the exit.
        folder = tmp_path / "data" / "media" / stream.playback_id / session.id
        assert (folder / "index.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")
        assert session.recording_status == "ready"
        assert (folder / "recording.mp4").stat().st_size > 0
    finally:
        await store.close()


@pytest.mark.slow
async def test_reload_applies_what_it_can_and_keeps_the_old_on_error(tmp_path: Path) -> None:
    config = serve_config(tmp_path)
    proc = await _spawn(config, {})
    port = await _rtmp_port(proc)
    text = config.read_text()
    config.write_text(text + '[log]\nlevel = "debug"\n')
    proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(1.0)
    _, writer = await asyncio.open_connection("127.0.0.1", port)  # logged at debug level
    writer.close()
    await asyncio.sleep(0.3)
    config.write_text(text.replace('listen = "127.0.0.1:0"', 'listen = "127.0.0.1:1"', 1))
    proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(1.0)
    config.write_text(text + "[rtmp]\nidle_timeout = -5\n")
    proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert proc.stderr is not None
    logs = (await proc.stderr.read()).decode()
    assert re.search(r"event=reloaded changed=log\.level needs_restart=-", logs), logs
    assert re.search(r"event=reloaded .*needs_restart=rtmp\.listen", logs), logs
    assert re.search(r"level=error .*event=reload_rejected .*rtmp", logs), logs
    assert "level=debug logger=ingest.listener event=connection_opened" in logs


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
async def test_socket_activation_uses_the_passed_sockets(tmp_path: Path, processes: int) -> None:
    """The passed sockets are used (with worker processes, the workers share the RTMP one)."""
    rtmp = socket.create_server(("127.0.0.1", 0))
    http = socket.create_server(("127.0.0.1", 0))
    rtmp_port, http_port = rtmp.getsockname()[1], http.getsockname()[1]
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    _, key = await Streams(store).create("cam")
    await store.close()
    # Point the config elsewhere: the passed sockets must win.
    config = serve_config(tmp_path)

    def move_fds() -> None:
        # Out of the way first (either may already sit on 3 or 4), then onto 3 and 4,
        # inheritable, as systemd passes them.
        high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in (rtmp, http)]
        for target, fd in enumerate(high, start=3):
            os.dup2(fd, target)
            os.close(fd)

    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" -m ingest serve --config "$1"',
        sys.executable, str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "LISTEN_FDS": "2",
            "LISTEN_FDNAMES": "rtmp:http",
            "RTMP_INGEST_RTMP_PROCESSES": str(processes),
        },
        close_fds=False, preexec_fn=move_fds,
    )  # fmt: skip
    rtmp.close()
    http.close()
    try:
        assert await _rtmp_port(proc) == rtmp_port
        health = await asyncio.to_thread(
            urllib.request.urlopen, f"http://127.0.0.1:{http_port}/healthz", timeout=5
        )
        assert health.status == 200
        token = (tmp_path / "data" / "admin_token").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/api/status",
            headers={"Authorization": f"Bearer {token}"},
        )
        await asyncio.sleep(0.2)
        status = json.loads((await asyncio.to_thread(urllib.request.urlopen, request)).read())
        assert set(status["loop_lag_ms"]) == {"p50", "p99", "max"}
        pids = [p["pid"] for p in status["processes"]]
        assert len(pids) == processes
        assert (pids == [proc.pid]) if processes == 1 else (proc.pid not in pids)
        source = make_flv(tmp_path / "clip.flv", seconds=1)
        for _ in range(3):
            url = f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"
            assert await publish_with_ffmpeg(source, url) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
