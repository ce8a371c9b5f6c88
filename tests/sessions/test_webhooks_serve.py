"""Webhooks from the real server process (``rtmp-ingest serve``) to a real local receiver:
a publish's events arrive in order and signed, and a delivery pending when the server is
killed with SIGKILL arrives after the restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.media import make_flv
from sessions.streams import Streams
from sessions.webhooks.endpoints import Webhooks
from sessions.webhooks.signing import HEADER, verify
from storage import DeliveryRecord, Store
from tests.support.media import publish_with_ffmpeg
from tests.support.receiver import Received, Receiver, Reply
from tests.support.server import serve_config, start_server

EVENTS = ["stream.created", "stream.started", "stream.idle", "recording.ready"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def config_with_webhooks(tmp_path: Path, http_port: int) -> Path:
    config = serve_config(tmp_path, http_listen=f"127.0.0.1:{http_port}")
    with config.open("a") as fh:
        fh.write("[webhooks]\npoll_interval = 0.1\nretry_min = 0.2\nretry_max = 0.5\n")
    return config


async def prepare(tmp_path: Path, url: str) -> tuple[str, str, str]:
    """A webhook (its id and secret) and a recorded stream's key, in the server's store."""
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    try:
        hook = await Webhooks(store).create(url, EVENTS)
        _, key = await Streams(store).create("cam", record=True)
    finally:
        await store.close()
    return hook.id, hook.secret, key


async def deliveries(tmp_path: Path, webhook_id: str) -> list[DeliveryRecord]:
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    try:
        found, _ = await store.list_deliveries(webhook_id)
    finally:
        await store.close()
    return sorted(found, key=lambda d: d.id)


async def stop(server: asyncio.subprocess.Process) -> None:
    server.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.wait(), 30) == 0


@pytest.mark.slow
async def test_a_publishs_events_arrive_in_order_and_signed(tmp_path: Path) -> None:
    receiver = await Receiver().start()
    http_port = free_port()
    config = config_with_webhooks(tmp_path, http_port)
    webhook_id, secret, key = await prepare(tmp_path, receiver.url)
    server, port, _ = await start_server(config)
    try:
        source = make_flv(tmp_path / "clip.flv", seconds=2)
        assert await publish_with_ffmpeg(source, f"rtmp://127.0.0.1:{port}/live/{key}") == 0
        requests = await receiver.wait_for(4, timeout=60)
        token = (tmp_path / "data" / "admin_token").read_text().strip()
        bodies: list[dict[str, Any]] = [r.json() for r in requests]
        session_id = bodies[1]["session"]["id"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            shown = await client.get(
                f"/api/sessions/{session_id}", headers={"Authorization": f"Bearer {token}"}
            )
        shown.raise_for_status()
    finally:
        await stop(server)
        await receiver.stop()
    assert [b["event"] for b in bodies] == EVENTS
    for request in requests:
        assert verify(secret, request.headers[HEADER.lower()], request.body, now=time.time())
        assert not verify("whsec_not-the-secret", request.headers[HEADER.lower()], request.body)
    assert len({b["id"] for b in bodies}) == 4
    assert all(b["stream"]["name"] == "cam" for b in bodies)
    assert bodies[0]["session"] is None
    assert {b["session"]["id"] for b in bodies[1:]} == {session_id}
    started, idle, ready = (b["session"] for b in bodies[1:])
    assert started["status"] == "live" and idle["status"] == "ended"
    assert idle["end_reason"] == "unpublished" and idle["bytes_received"] > 0
    # The last event's session is the one the API shows now, field for field.
    assert ready == shown.json()
    assert ready["recording_status"] == "ready"
    assert {k: v for k, v in idle.items() if not k.startswith(("recording", "mp4", "updated"))} == {
        k: v for k, v in ready.items() if not k.startswith(("recording", "mp4", "updated"))
    }
    assert [d.state for d in await deliveries(tmp_path, webhook_id)] == ["delivered"] * 4


@pytest.mark.slow
async def test_a_delivery_pending_at_a_sigkill_arrives_after_the_restart(tmp_path: Path) -> None:
    receiver = await Receiver().start()
    await receiver.stop()  # its port is known; nobody listens there yet
    config = config_with_webhooks(tmp_path, free_port())
    webhook_id, secret, key = await prepare(tmp_path, receiver.url)
    server, port, _ = await start_server(config)
    killed = False
    try:
        source = make_flv(tmp_path / "clip.flv", seconds=2)
        assert await publish_with_ffmpeg(source, f"rtmp://127.0.0.1:{port}/live/{key}") == 0
        async with asyncio.timeout(60):
            while True:  # the session's end is in, and the stream's deliveries are failing
                found = {d.event: d for d in await deliveries(tmp_path, webhook_id)}
                if "stream.idle" in found and found["stream.created"].attempts >= 2:
                    break
                await asyncio.sleep(0.1)
        os.kill(server.pid, signal.SIGKILL)
        killed = True
        await server.wait()
    finally:
        if not killed:
            await stop(server)
    before = {d.event: d for d in await deliveries(tmp_path, webhook_id)}
    assert all(d.state == "pending" for d in before.values())
    await receiver.start()
    server, _, _ = await start_server(config)
    try:
        await receiver.wait_for(len(EVENTS), timeout=60)
        async with asyncio.timeout(30):
            while any(d.state != "delivered" for d in await deliveries(tmp_path, webhook_id)):
                await asyncio.sleep(0.1)
    finally:
        await stop(server)
        await receiver.stop()
    after = {d.event: d for d in await deliveries(tmp_path, webhook_id)}
    assert set(after) == set(EVENTS)
    for event, delivery in after.items():
        log = delivery.attempt_log
        assert log[-1].status_code == 204, event
        assert all(a.status_code is None and a.error for a in log[:-1]), event
    # The stream's first event was refused before the kill and delivered after; the
    # stream's later ones waited behind it (one stream's order), then followed in order.
    first = after["stream.created"]
    assert len(first.attempt_log) >= 3
    assert any("Connect" in (a.error or "") for a in first.attempt_log)
    assert [r.json()["event"] for r in receiver.requests] == EVENTS
    for request in receiver.requests:
        assert verify(secret, request.headers[HEADER.lower()], request.body)


@pytest.mark.slow
async def test_http_auth_and_webhooks_with_worker_processes(tmp_path: Path) -> None:
    """With ``[rtmp] processes = 2`` the main process asks the callback for a worker's
    publish, and sends the webhooks of the sessions the workers write."""

    async def allow(_: Received) -> Reply:
        return 200, {"stream": "from-callback"}

    callback = await Receiver(allow).start()
    receiver = await Receiver().start()
    config = config_with_webhooks(tmp_path, free_port())
    with config.open("a") as fh:
        fh.write(f'[auth]\nmode = "http"\nhttp_url = "{callback.url}"\n')
    text = config.read_text().replace("[rtmp]\n", "[rtmp]\nprocesses = 2\n", 1)
    config.write_text(text)
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    try:
        hook = await Webhooks(store).create(receiver.url, ["stream.started", "stream.idle"])
    finally:
        await store.close()
    server, port, _ = await start_server(config)
    try:
        source = make_flv(tmp_path / "clip.flv", seconds=2)
        url = f"rtmp://127.0.0.1:{port}/live/any-key-the-callback-likes"
        assert await publish_with_ffmpeg(source, url) == 0
        requests = await receiver.wait_for(2, timeout=60)
    finally:
        await stop(server)
        await receiver.stop()
        await callback.stop()
    assert server.stderr is not None
    log = (await server.stderr.read()).decode()
    assert "publish_accepted" in log or "session_started" in log
    assert "any-key-the-callback-likes" not in log  # sent to the callback, never logged
    for stored in (tmp_path / "data").glob("rtmp-ingest.db*"):  # the database and its WAL
        assert b"any-key-the-callback-likes" not in stored.read_bytes()
    assert len(callback.requests) == 1
    assert callback.requests[0].json()["stream_key"] == "any-key-the-callback-likes"
    bodies = [r.json() for r in requests]
    assert [b["event"] for b in bodies] == ["stream.started", "stream.idle"]
    assert {b["stream"]["name"] for b in bodies} == {"from-callback"}
    for request in requests:
        assert verify(hook.secret, request.headers[HEADER.lower()], request.body)
