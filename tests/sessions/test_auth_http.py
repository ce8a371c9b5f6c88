"""``[auth] mode = "http"`` with a real local callback server: allow (the stream made on
first use), deny with the callback's reason, a callback that times out with either
``http_on_error``, the cache, and the refusal as ffmpeg sees it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bench.media import make_flv
from ingest.config import AuthConfig, Config, SessionsConfig
from ingest.rtmp.events import PublishStarted, StatusReceived
from ingest.server.runtime import apply_live
from sessions.webhooks.endpoints import Webhooks
from tests.support.events import events
from tests.support.receiver import DripServer, Received, Receiver, Reply, Responder
from tests.support.rtmp_client import SocketPublisher
from tests.support.stack import Stack, start_stack

SECRET_KEY = "sk-live-7f3a9c0e51d2"


def allow_as(name: str) -> Responder:
    async def answer(_: Received) -> Reply:
        return 200, {"stream": name}

    return answer


@asynccontextmanager
async def http_auth(
    tmp_path: Path, respond: Responder, **auth: object
) -> AsyncIterator[tuple[Stack, Receiver]]:
    receiver = await Receiver(respond).start()
    settings = {"mode": "http", "http_url": receiver.url, "http_timeout": 0.5, **auth}
    stack = await start_stack(tmp_path, auth=AuthConfig(**settings))  # type: ignore[arg-type]
    try:
        yield stack, receiver
    finally:
        await stack.close()
        await receiver.stop()


async def publish(stack: Stack, name: str) -> str:
    """Publish as ``name``; the status code the server answers with."""
    publisher = await SocketPublisher.open(stack.rtmp.port, name=name)
    try:
        async with asyncio.timeout(10):
            while True:
                for event in publisher.events:
                    if isinstance(event, PublishStarted):
                        return "NetStream.Publish.Start"
                    if isinstance(event, StatusReceived):
                        return event.code
                assert not publisher.eof, publisher.events
                await publisher._read_once()
    finally:
        publisher.close()


async def logged(stack: Stack, kind: str) -> list[str | None]:
    await stack.authorizer.drain()
    return [e.reason for e in await events(stack.store) if e.kind == kind]


async def test_allowed_publish_attaches_to_the_named_stream_made_on_first_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with http_auth(tmp_path, allow_as("studio-a")) as (stack, receiver):
        assert await stack.store.get_stream_by_name("studio-a") is None
        code = await publish(stack, f"{SECRET_KEY}?token=abc&x=")
        assert code == "NetStream.Publish.Start"
        stream = await stack.store.get_stream_by_name("studio-a")
        assert stream is not None
        code = await publish(stack, SECRET_KEY)  # the same stream, not a second one
        assert code == "NetStream.Publish.Start"
        _, total = await stack.store.list_streams()
        assert total == 1
        (first, _) = receiver.requests
        body = first.json()
        assert body["app"] == "live" and body["stream_key"] == SECRET_KEY
        assert body["args"] == {"token": "abc", "x": ""}
        assert body["remote_addr"].startswith("127.0.0.1:")
        assert body["tc_url"] == f"rtmp://127.0.0.1:{stack.rtmp.port}/live"
        assert body["flash_ver"]
        await stack.authorizer.drain()
        accepted = [e for e in await events(stack.store) if e.kind == "publish_accepted"]
        assert {e.stream_id for e in accepted} == {stream.id}
        rows = await events(stack.store)
    assert SECRET_KEY not in caplog.text
    assert all(SECRET_KEY not in repr(row) for row in rows)
    for stored in tmp_path.glob("ledger.db*"):  # the database and its WAL
        assert SECRET_KEY.encode() not in stored.read_bytes()


async def test_denied_publish_carries_the_callbacks_reason(tmp_path: Path) -> None:
    async def deny(_: Received) -> Reply:
        return 403, {"reason": "account suspended"}

    async with http_auth(tmp_path, deny) as (stack, _):
        hook = await Webhooks(stack.store).create("http://127.0.0.1:1/", ["publish.rejected"])
        assert await publish(stack, SECRET_KEY) == "NetStream.Publish.Denied"
        (reason,) = await logged(stack, "publish_rejected")
        assert reason == "refused by the authorization callback: account suspended"
        assert (await stack.store.list_streams())[1] == 0
        # The refusal's event-log row carried its webhook event.
        (delivery,) = await stack.store.pending_deliveries(hook.id)
        assert delivery.event == "publish.rejected" and delivery.stream_id is None
        assert delivery.data["reason"] == reason and delivery.data["app"] == "live"
        assert SECRET_KEY not in repr(delivery.data)


async def test_a_plain_text_refusal_and_a_bare_status(tmp_path: Path) -> None:
    answers = iter([(401, "no such key"), (404, None)])

    async def deny(_: Received) -> Reply:
        return next(answers)

    async with http_auth(tmp_path, deny) as (stack, _):
        assert await publish(stack, "a") == "NetStream.Publish.Denied"
        assert await publish(stack, "b") == "NetStream.Publish.Denied"
        reasons = await logged(stack, "publish_rejected")
    assert set(reasons) == {
        "refused by the authorization callback: HTTP 404",
        "refused by the authorization callback: no such key",
    }


def slow_after(first: int, name: str) -> Responder:
    """Allow as ``name`` for the first ``first`` calls, then answer too late."""
    calls = 0

    async def answer(_: Received) -> Reply:
        nonlocal calls
        calls += 1
        if calls > first:
            await asyncio.sleep(3.0)
        return 200, {"stream": name}

    return answer


async def test_a_timeout_denies_with_deny(tmp_path: Path) -> None:
    async with http_auth(tmp_path, slow_after(0, "x"), http_on_error="deny") as (stack, _):
        started = time.monotonic()
        assert await publish(stack, SECRET_KEY) == "NetStream.Publish.Denied"
        waited = time.monotonic() - started
        (reason,) = await logged(stack, "publish_rejected")
    assert reason == "authorization callback failed: no answer within 0.5 s"
    assert waited < 3.0  # refused at the timeout, not when the callback answered


async def test_a_callback_that_never_finishes_its_answer_times_out(tmp_path: Path) -> None:
    drip = await DripServer(interval=0.05).start()
    stack = await start_stack(
        tmp_path, auth=AuthConfig(mode="http", http_url=drip.url, http_timeout=0.5)
    )
    try:
        assert await publish(stack, SECRET_KEY) == "NetStream.Publish.Denied"
        (reason,) = await logged(stack, "publish_rejected")
    finally:
        await stack.close()
        await drip.stop()
    assert reason == "authorization callback failed: no answer within 0.5 s"
    assert drip.connections == 1


async def test_a_timeout_with_allow_lets_in_known_keys_only(tmp_path: Path) -> None:
    async with http_auth(tmp_path, slow_after(1, "studio-b"), http_on_error="allow") as (
        stack,
        receiver,
    ):
        assert await publish(stack, SECRET_KEY) == "NetStream.Publish.Start"  # asked: yes
        # The callback now times out: a key it allowed before still gets in...
        assert await publish(stack, SECRET_KEY) == "NetStream.Publish.Start"
        # ...as does a stream key of this server (keys mode as the fallback)...
        own, own_key = await stack.streams.create("own")
        assert await publish(stack, own_key) == "NetStream.Publish.Start"
        # ...but not a key nobody knows.
        assert await publish(stack, "never-seen") == "NetStream.Publish.BadName"
        assert len(receiver.requests) == 4
        await stack.authorizer.drain()
        accepted = [e.stream_id for e in await events(stack.store) if e.kind == "publish_accepted"]
        studio = await stack.store.get_stream_by_name("studio-b")
        assert studio is not None
        assert sorted(accepted, key=str) == sorted([studio.id, studio.id, own.id], key=str)


@pytest.mark.parametrize("cache", [0.0, 60.0])
async def test_allowed_answers_are_cached(tmp_path: Path, cache: float) -> None:
    async with http_auth(tmp_path, allow_as("cached"), http_cache=cache) as (stack, receiver):
        for _ in range(3):
            assert await publish(stack, SECRET_KEY) == "NetStream.Publish.Start"
        assert await publish(stack, "another-key") == "NetStream.Publish.Start"
        calls = len(receiver.requests)
    assert calls == (2 if cache else 4)


async def test_refusals_are_not_cached(tmp_path: Path) -> None:
    async def deny(_: Received) -> Reply:
        return 403, {"reason": "no"}

    async with http_auth(tmp_path, deny, http_cache=60.0) as (stack, receiver):
        for _ in range(2):
            assert await publish(stack, SECRET_KEY) == "NetStream.Publish.Denied"
        assert len(receiver.requests) == 2


@pytest.mark.slow
async def test_ffmpeg_gets_the_refusal(tmp_path: Path) -> None:
    async def deny(_: Received) -> Reply:
        return 403, {"reason": "not on the schedule"}

    source = make_flv(tmp_path / "clip.flv", seconds=1)
    async with http_auth(tmp_path, deny) as (stack, _):
        proc = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(source),
            "-c", "copy", "-f", "flv", stack.url(SECRET_KEY),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0
    text = stderr.decode(errors="replace")
    assert "Server error: refused by the authorization callback: not on the schedule" in text


async def test_a_reload_switches_the_mode_and_the_callback(tmp_path: Path) -> None:
    first = await Receiver(allow_as("first")).start()
    second = await Receiver(allow_as("second")).start()
    stack = await start_stack(tmp_path)
    try:
        _, own_key = await stack.streams.create("own")
        assert await publish(stack, "unknown") == "NetStream.Publish.BadName"  # keys mode
        config = Config(
            auth=AuthConfig(mode="http", http_url=first.url),
            sessions=SessionsConfig(reject_delay_min=0.0, reject_delay_max=0.0),
        )
        apply_live(config, stack.sessions)
        assert await publish(stack, "unknown") == "NetStream.Publish.Start"
        apply_live(dataclasses.replace(config, auth=AuthConfig("http", second.url)), stack.sessions)
        assert await publish(stack, "unknown") == "NetStream.Publish.Start"
        apply_live(dataclasses.replace(config, auth=AuthConfig()), stack.sessions)
        assert await publish(stack, "unknown") == "NetStream.Publish.BadName"
        assert await publish(stack, own_key) == "NetStream.Publish.Start"
        streams, _ = await stack.store.list_streams()
    finally:
        await stack.close()
        await first.stop()
        await second.stop()
    assert (len(first.requests), len(second.requests)) == (1, 1)
    assert {s.name for s in streams} == {"own", "first", "second"}
