"""What one HTTP connection may hold: its request headers must arrive within
``[http] header_timeout`` (all of them, not each line), and no more than
``[http] max_connections`` are open at once. Real sockets against the served API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sessions.http.server import LOG_INTERVAL, LimitLog
from tests.sessions.http.conftest import TOKEN
from tests.sessions.http.served import (
    Served,
    closed_by_server,
    connection,
    read_response,
    serve_api,
)

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n"


async def _healthz(served: Served) -> int:
    async with connection(served) as (reader, writer):
        writer.write(REQUEST)
        return (await read_response(reader)).status


async def _trickle(writer: asyncio.StreamWriter, interval: float) -> None:
    """One header line every *interval* seconds, for as long as the connection lasts."""
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    with contextlib.suppress(ConnectionError):
        for n in range(100_000):
            await asyncio.sleep(interval)
            writer.write(b"X-Pad-%d: 1\r\n" % n)
            await writer.drain()


@contextlib.asynccontextmanager
async def _trickling(served: Served, interval: float) -> AsyncIterator[asyncio.StreamReader]:
    async with connection(served) as (reader, writer):
        task = asyncio.ensure_future(_trickle(writer, interval))
        try:
            yield reader
        finally:
            task.cancel()


async def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sessions.http" and r.msg == event]


async def test_a_client_trickling_header_lines_is_cut_at_the_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sessions.http")
    async with serve_api(tmp_path, header_timeout=0.5) as served:
        # A line every 0.1 s is well within the deadline per line: only a deadline on
        # the whole header cuts it.
        async with _trickling(served, 0.1) as reader:
            assert await _healthz(served) == 200  # others are served meanwhile
            response = await read_response(reader)
            assert response.status == 408
            assert json.loads(response.body)["error"]["code"] == "request_timeout"
            assert await closed_by_server(reader)
        assert await _healthz(served) == 200
    [record] = _events(caplog, "http_header_timeout")
    assert record.fields == {"count": 1, "timeout": 0.5}  # type: ignore[attr-defined]


async def test_a_connection_that_sends_nothing_is_cut_too(tmp_path: Path) -> None:
    async with (
        serve_api(tmp_path, header_timeout=0.5) as served,
        connection(served) as (reader, _),
    ):
        assert (await read_response(reader)).status == 408
        assert await closed_by_server(reader)


async def test_a_later_request_on_a_kept_alive_connection_has_the_deadline_too(
    tmp_path: Path,
) -> None:
    async with (
        serve_api(tmp_path, header_timeout=0.5) as served,
        connection(served) as (reader, writer),
    ):
        writer.write(REQUEST)
        assert (await read_response(reader)).status == 200
        task = asyncio.ensure_future(_trickle(writer, 0.1))
        try:
            assert (await read_response(reader)).status == 408
            assert await closed_by_server(reader)
        finally:
            task.cancel()


async def test_connections_beyond_the_cap_are_refused_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sessions.http")
    async with (
        serve_api(tmp_path, max_connections=3, header_timeout=60.0) as served,
        contextlib.AsyncExitStack() as stack,
    ):
        held = [await stack.enter_async_context(connection(served)) for _ in range(3)]
        for _, writer in held:
            writer.write(b"GET /healthz HTTP/1.1\r\n")  # never finished
        connections = served.server.server_state.connections
        await _until(lambda: len(connections) == 3)
        for _ in range(2):
            async with connection(served) as (reader, _):
                response = await read_response(reader)
                assert response.status == 503
                assert json.loads(response.body)["error"]["code"] == "too_many_connections"
                assert await closed_by_server(reader)
        # Once one goes, there is room again.
        held[0][1].close()
        await _until(lambda: len(connections) < 3)
        assert await _healthz(served) == 200
    records = _events(caplog, "http_connection_refused")
    assert records[0].fields == {"count": 1, "max_connections": 3}  # type: ignore[attr-defined]


def test_limit_log_lines_are_rate_limited_and_carry_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sessions.http")
    log = LimitLog("http_connection_refused", max_connections=3)
    for now in (100.0, 101.0, 102.0, 100.0 + LOG_INTERVAL, 100.0 + LOG_INTERVAL + 1):
        log.hit(now)
    counts = [r.fields["count"] for r in _events(caplog, "http_connection_refused")]  # type: ignore[attr-defined]
    assert counts == [1, 3]


async def test_stopping_does_not_wait_for_ever_on_a_slow_body(tmp_path: Path) -> None:
    stopped = False
    async with serve_api(tmp_path, shutdown_grace=1) as served, connection(served) as (_, writer):
        writer.write(
            b"POST /api/streams HTTP/1.1\r\nHost: api.test\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        await _until(lambda: bool(served.server.server_state.tasks))
        served.server.should_exit = True
        # The request waits for a body that never comes; the server stops all the same.
        await asyncio.wait_for(_until(lambda: not served.server.server_state.tasks), 30)
        stopped = True
    assert stopped
