"""systemd integration: sd_notify datagrams over real sockets, the watchdog, socket activation."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.server.systemd import (
    Notifier,
    activated_sockets,
    journal_stream,
    run_watchdog,
    watchdog_interval,
)
from tests.support.server import ROOT

# --- sd_notify ------------------------------------------------------------------------------


class Receiver:
    """The service manager's end: a bound unix datagram socket."""

    def __init__(self, env_value: str, address: str) -> None:
        self.env_value = env_value
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2.0)

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def drain(self) -> list[str]:
        self.sock.setblocking(False)
        got: list[str] = []
        try:
            while True:
                got.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2.0)
        return got

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("\0"):
            Path(self.address).unlink(missing_ok=True)


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, or a shorter directory when a socket path there would be too long."""
    if len(str(tmp_path / "notify")) < 100:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(prefix="sd-") as name:
        yield Path(name)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[Receiver]:
    if request.param == "path":
        path = str(short_dir / "notify")
        rec = Receiver(path, path)
    else:
        name = f"rtmp-ingest-test-{secrets.token_hex(8)}"
        rec = Receiver("@" + name, "\0" + name)
    yield rec
    rec.close()


async def notifier_for(rec: Receiver) -> Notifier:
    notifier = await Notifier.from_environ({"NOTIFY_SOCKET": rec.env_value})
    assert notifier is not None
    return notifier


async def test_ready_status_stopping_watchdog_datagrams(receiver: Receiver) -> None:
    notifier = await notifier_for(receiver)
    try:
        await notifier.ready()
        assert receiver.recv() == "READY=1"
        await notifier.ready(status="Serving on :1935")
        assert receiver.recv() == "READY=1\nSTATUS=Serving on :1935"
        await notifier.status("two\nlines")
        assert receiver.recv() == "STATUS=two lines"
        await notifier.watchdog()
        assert receiver.recv() == "WATCHDOG=1"
        await notifier.stopping()
        assert receiver.recv() == "STOPPING=1"
        await notifier.send("A=1", "B=2")
        assert receiver.recv() == "A=1\nB=2"
    finally:
        notifier.close()


async def test_reloading_carries_the_monotonic_time(receiver: Receiver) -> None:
    notifier = await notifier_for(receiver)
    try:
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        await notifier.reloading()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        first, second = receiver.recv().split("\n")
        assert first == "RELOADING=1"
        key, _, value = second.partition("=")
        assert key == "MONOTONIC_USEC"
        assert before <= int(value) <= after
    finally:
        notifier.close()


@pytest.mark.parametrize(
    "environ",
    [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "relative/path"}, {"NOTIFY_SOCKET": "@"}],
)
async def test_silent_without_a_notify_socket(environ: dict[str, str]) -> None:
    assert await Notifier.from_environ(environ) is None


async def test_reads_os_environ_by_default(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.env_value)
    notifier = await Notifier.from_environ()
    assert notifier is not None
    await notifier.ready()
    assert receiver.recv() == "READY=1"
    notifier.close()
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert await Notifier.from_environ() is None


async def test_send_after_the_receiver_is_gone_does_not_raise(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = await notifier_for(receiver)
    await notifier.ready()
    assert receiver.recv() == "READY=1"
    receiver.close()
    with caplog.at_level(logging.DEBUG, logger="ingest.systemd"):
        for _ in range(3):
            await notifier.watchdog()
            await notifier.status("still here")
    failures = [r for r in caplog.records if r.name == "ingest.systemd"]
    assert len(failures) == 1  # logged once
    assert failures[0].levelno == logging.DEBUG
    notifier.close()
    await notifier.watchdog()  # closed: a no-op


async def test_a_missing_socket_at_start_is_silent_then_picked_up(short_dir: Path) -> None:
    path = str(short_dir / "later")
    notifier = await Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier is not None
    await notifier.ready()  # nobody listening yet: dropped without an error
    rec = Receiver(path, path)
    try:
        await notifier.ready()
        assert rec.recv() == "READY=1"
    finally:
        notifier.close()
        rec.close()


async def test_a_recreated_receiver_gets_the_next_datagram(receiver: Receiver) -> None:
    notifier = await notifier_for(receiver)
    try:
        await notifier.watchdog()
        assert receiver.recv() == "WATCHDOG=1"
        receiver.close()
        again = Receiver(receiver.env_value, receiver.address)
        try:
            await notifier.status("after")
            assert again.recv() == "STATUS=after"
        finally:
            again.close()
    finally:
        notifier.close()


# --- the watchdog ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "nope"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "1.5"}, None),
        ({"WATCHDOG_USEC": "abc"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


def test_watchdog_interval_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 2.0
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


async def test_run_watchdog_pings_every_half_interval(receiver: Receiver) -> None:
    notifier = await notifier_for(receiver)
    task = asyncio.create_task(run_watchdog(notifier, 0.2))
    try:
        await asyncio.sleep(0.55)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        notifier.close()
    pings = receiver.drain()
    assert set(pings) == {"WATCHDOG=1"}
    assert 4 <= len(pings) <= 8  # about 0.55 / 0.1 + 1 = 6


# --- journal ----------------------------------------------------------------------------------


def test_journal_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    assert journal_stream({"JOURNAL_STREAM": "8:12345"})
    assert not journal_stream({"JOURNAL_STREAM": ""})
    assert not journal_stream({})
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    assert journal_stream()
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not journal_stream()


# --- socket activation ----------------------------------------------------------------------

# Run in a child: move the passed sockets to fds 3, 4, ... (as systemd does), then call
# activated_sockets for this process and print what it returned.
_CHILD = r"""
import fcntl, json, os, socket, sys
from ingest.server.systemd import activated_sockets

fds = [int(a) for a in sys.argv[1].split(",")]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)
    os.close(fd)
env = json.loads(sys.argv[2])
if env.get("LISTEN_PID") == "self":
    env["LISTEN_PID"] = str(os.getpid())
try:
    got = activated_sockets(env)
except ValueError as exc:
    print(json.dumps({"error": str(exc), "env": env}))
    sys.exit(0)

def describe(s):
    return {
        "fd": s.fileno(),
        "port": s.getsockname()[1],
        "blocking": s.getblocking(),
        "inheritable": s.get_inheritable(),
        "family": s.family.name,
    }

result = None if got is None else {
    "rtmp": [describe(s) for s in got.rtmp],
    "http": [describe(s) for s in got.http],
    "rtmps": [describe(s) for s in got.rtmps],
}
print(json.dumps({"result": result, "env": env}))
"""


def _listener(kind: int = socket.SOCK_STREAM) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


def _activate(socks: list[socket.socket], env: dict[str, str]) -> dict[str, object]:
    """Pass *socks* to a child as fds 3.. and return what activated_sockets made of them."""
    fds = [s.fileno() for s in socks]
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, ",".join(map(str, fds)), json.dumps(env)],
        pass_fds=fds,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answer: dict[str, object] = json.loads(proc.stdout)
    return answer


@pytest.fixture
def two_listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    first, second = _listener(), _listener()
    yield first, second
    first.close()
    second.close()


def _ports(result: object, role: str) -> list[int]:
    assert isinstance(result, dict)
    return [entry["port"] for entry in result[role]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("names", "rtmp_index", "http_index"),
    [
        ("rtmp:http", 0, 1),
        ("http:rtmp", 1, 0),  # the names win over the order
        (None, 0, 1),  # no names: by order
        ("unknown:unknown", 0, 1),
        ("http:unknown", 1, 0),  # the unnamed one goes to the role left
        ("rtmp-ingest.socket:rtmp-ingest.socket", 0, 1),  # systemd's default names
    ],
)
def test_activated_sockets_by_name_and_order(
    two_listeners: tuple[socket.socket, socket.socket],
    names: str | None,
    rtmp_index: int,
    http_index: int,
) -> None:
    socks = list(two_listeners)
    env = {"LISTEN_PID": "self", "LISTEN_FDS": "2", "KEEP": "1"}
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    answer = _activate(socks, env)
    result = answer["result"]
    assert isinstance(result, dict)
    ports = [s.getsockname()[1] for s in socks]
    assert _ports(result, "rtmp") == [ports[rtmp_index]]
    assert _ports(result, "http") == [ports[http_index]]
    assert result["rtmp"][0]["fd"] == 3 + rtmp_index
    assert result["http"][0]["fd"] == 3 + http_index
    for entry in result["rtmp"] + result["http"]:
        assert entry["blocking"] is False
        assert entry["inheritable"] is False
        assert entry["family"] == "AF_INET"
    assert answer["env"] == {"KEEP": "1"}  # LISTEN_* removed


@pytest.mark.slow
def test_activated_sockets_several_per_role(
    two_listeners: tuple[socket.socket, socket.socket],
) -> None:
    third = _listener()
    try:
        socks = [*two_listeners, third]
        env = {"LISTEN_PID": "self", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "rtmp:http:rtmp"}
        result = _activate(socks, env)["result"]
        ports = [s.getsockname()[1] for s in socks]
        assert _ports(result, "rtmp") == [ports[0], ports[2]]
        assert _ports(result, "http") == [ports[1]]
    finally:
        third.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("names", "roles"),
    [
        ("rtmp:http:rtmps", ["rtmp", "http", "rtmps"]),
        ("rtmps:unknown:unknown", ["rtmps", "rtmp", "http"]),  # unnamed ones never TLS
        ("rtmps:rtmp", ["rtmps", "rtmp"]),  # http left to bind itself
    ],
)
def test_activated_sockets_rtmps_only_by_name(names: str, roles: list[str]) -> None:
    socks = [_listener() for _ in roles]
    try:
        env = {"LISTEN_PID": "self", "LISTEN_FDS": str(len(socks)), "LISTEN_FDNAMES": names}
        result = _activate(socks, env)["result"]
        ports = [s.getsockname()[1] for s in socks]
        for role in ("rtmp", "http", "rtmps"):
            expected = [port for port, given in zip(ports, roles, strict=True) if given == role]
            assert _ports(result, role) == expected, role
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_activated_sockets_refuses_a_datagram_socket() -> None:
    stream, dgram = _listener(), _listener(socket.SOCK_DGRAM)
    try:
        env = {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "rtmp:http"}
        answer = _activate([stream, dgram], env)
        assert "result" not in answer
        error = answer["error"]
        assert isinstance(error, str)
        assert "file descriptor 4" in error
        assert "stream" in error
        assert answer["env"] == {}
    finally:
        stream.close()
        dgram.close()


@pytest.mark.slow
def test_activated_sockets_refuses_a_third_unnamed_socket() -> None:
    socks = [_listener() for _ in range(3)]
    try:
        answer = _activate(socks, {"LISTEN_PID": "self", "LISTEN_FDS": "3"})
        error = answer["error"]
        assert isinstance(error, str)
        assert "file descriptor 5" in error
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "rtmp:http"},
        {"LISTEN_PID": "garbage", "LISTEN_FDS": "2"},
        {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"},
        {"LISTEN_PID": str(os.getpid())},
    ],
)
def test_not_activated(environ: dict[str, str]) -> None:
    env = {**environ, "OTHER": "x"}
    assert activated_sockets(env) is None
    assert env == {"OTHER": "x"}  # removed whatever the outcome, as sd_listen_fds(1) does


def test_not_activated_keeps_the_variables_when_asked() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert activated_sockets(env, unset=False) is None
    assert env == {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}


def test_invalid_listen_fds_is_an_error() -> None:
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "two"}
    with pytest.raises(ValueError, match="LISTEN_FDS"):
        activated_sockets(env)
    assert env == {}


def test_activation_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "2")
    assert activated_sockets() is None
    assert "LISTEN_PID" not in os.environ
    assert "LISTEN_FDS" not in os.environ


def test_notifier_on_uvloop_falls_back_to_a_plain_socket(tmp_path: Path) -> None:
    """uvloop cannot make unix datagram endpoints; the notifier must still get through."""
    import uvloop

    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(tmp_path / "notify-uv.sock"))
    receiver.settimeout(5)

    async def notify() -> None:
        notifier = await Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "notify-uv.sock")})
        assert notifier is not None
        await notifier.ready("0 live sessions")
        await notifier.watchdog()
        notifier.close()

    uvloop.run(notify())
    assert receiver.recv(4096) == b"READY=1\nSTATUS=0 live sessions"
    assert receiver.recv(4096) == b"WATCHDOG=1"
    receiver.close()
