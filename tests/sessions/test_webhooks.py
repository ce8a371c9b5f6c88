"""Webhook deliveries to a real local HTTP receiver: signed, in order per stream, retried
through 5xx answers, timeouts and refused connections, given up in the end, and never in
the way of another endpoint, another stream or a publish."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sessions.streams import Streams
from sessions.webhooks.dispatcher import DeliveryPolicy, Dispatcher, backoff
from sessions.webhooks.endpoints import InvalidWebhook, Webhooks
from sessions.webhooks.payload import Payloads
from sessions.webhooks.signing import HEADER, sign, verify
from storage import OutboxEvent, PendingDelivery, SessionRecord, Store
from tests.support.receiver import DripServer, Received, Receiver, Reply
from tests.support.rtmp_client import SocketPublisher
from tests.support.stack import Stack, start_stack

FAST = DeliveryPolicy(timeout=0.5, retry_min=0.05, retry_max=0.2, poll_interval=0.05)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "ingest.db") as store:
        for n in (1, 2):
            await store.create_stream(
                id=f"s{n}", name=f"n{n}", key_hash=f"h{n}", playback_id=f"p{n}", now=0.0
            )
        yield store


def dispatcher(store: Store, policy: DeliveryPolicy = FAST) -> Dispatcher:
    payloads = Payloads(store, ingest_urls=["rtmp://ingest.test/live"], playback_base=None)
    return Dispatcher(store, payloads, policy, rand=random.Random(7))


async def started(store: Store, session_id: str, stream_id: str = "s1") -> OutboxEvent:
    now = time.time()
    record = SessionRecord(
        id=session_id, stream_id=stream_id, name="n", created_at=now, last_seen=now, updated_at=now
    )
    event = OutboxEvent("stream.started", now, stream_id, session_id)
    await store.insert_session(record, outbox=[event])
    return event


async def settled(store: Store, webhook_id: str, count: int, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            deliveries, _ = await store.list_deliveries(webhook_id)
            if sum(d.state != "pending" for d in deliveries) >= count:
                return
            await asyncio.sleep(0.02)


# -- pure parts --------------------------------------------------------------------------


def test_backoff_doubles_from_the_minimum_up_to_the_cap_with_jitter() -> None:
    policy = DeliveryPolicy(retry_min=1.0, retry_max=3600.0)
    rand = random.Random(1)
    for attempts, base in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 512.0), (13, 3600.0), (500, 3600)]:
        waits = [backoff(attempts, policy, rand) for _ in range(200)]
        assert all(base * 0.5 <= w <= base for w in waits)
        assert max(waits) - min(waits) > base * 0.3  # jittered, not one value


def test_a_signature_verifies_only_with_its_secret_and_body() -> None:
    body = b'{"id":"evt_1","event":"stream.started"}'
    header = sign("whsec_right", 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=")
    assert verify("whsec_right", header, body)
    assert verify("whsec_right", header, body, now=1_800_000_100)
    assert not verify("whsec_right", header, body, now=1_800_001_000)  # too old: a replay
    assert not verify("whsec_wrong", header, body)
    assert not verify("whsec_right", header, body + b" ")
    assert not verify("whsec_right", "t=x,v1=00", body)


async def test_urls_and_events_are_checked(store: Store) -> None:
    hooks = Webhooks(store)
    for url, why in [
        ("ftp://example.com/x", "http:// or https://"),
        ("http:///x", "must name a host"),
        ("http://user:pw@example.com/x", "user name or password"),
        ("http://example.com/x#frag", "fragment"),
        ("http://example.com:99999/x", "url:"),
        ("http://exa mple.com/", "spaces"),
    ]:
        with pytest.raises(InvalidWebhook, match=why):
            await hooks.create(url, ["stream.started"])
    with pytest.raises(InvalidWebhook, match="unknown event"):
        await hooks.create("http://127.0.0.1:1/x", ["stream.begun"])
    local = await hooks.create("http://127.0.0.1:1/x")  # local addresses: allowed
    assert "publish.rejected" not in local.events and "stream.idle" in local.events
    assert local.secret.startswith("whsec_")
    rotated = await hooks.rotate_secret(local.id)
    assert rotated is not None and rotated.secret != local.secret


# -- deliveries --------------------------------------------------------------------------


async def test_deliveries_are_signed_and_carry_the_api_json(store: Store) -> None:
    receiver = await Receiver().start()
    hook = await Webhooks(store).create(receiver.url, ["stream.started"])
    send = dispatcher(store)
    send.start()
    try:
        event = await started(store, "x1")
        (request,) = await receiver.wait_for(1)
        await settled(store, hook.id, 1)
    finally:
        await send.close()
        await receiver.stop()
    assert verify(hook.secret, request.headers[HEADER.lower()], request.body, now=time.time())
    assert not verify("whsec_wrong", request.headers[HEADER.lower()], request.body)
    body = request.json()
    assert body["id"] == event.id and body["event"] == "stream.started"
    assert body["stream"]["id"] == "s1" and body["stream"]["name"] == "n1"
    assert body["session"]["id"] == "x1" and body["session"]["status"] == "live"
    assert body["created_at"].endswith("Z")
    (delivery,), _ = await store.list_deliveries(hook.id)
    assert delivery.state == "delivered"
    assert [a.status_code for a in delivery.attempt_log] == [204]


async def test_a_failing_receiver_gets_it_later_and_every_attempt_is_listed(store: Store) -> None:
    """503, 503, a timeout, a refused connection, then 204: one delivery, five attempts,
    the same body (and id) each time."""
    calls = 0

    async def flaky(_: Received) -> Reply:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return 503, {"error": "busy"}
        if calls == 3:
            await asyncio.sleep(2.0)  # past the 0.5 s timeout
        return 204, None

    receiver = await Receiver(flaky).start()
    hook = await Webhooks(store).create(receiver.url, ["stream.started"])
    send = dispatcher(store)
    send.start()
    try:
        await started(store, "x1")
        await receiver.wait_for(3)
        await receiver.stop()  # the next attempt finds nobody listening
        async with asyncio.timeout(20):
            while True:
                (delivery,), _ = await store.list_deliveries(hook.id)
                if delivery.attempts >= 4:
                    break
                await asyncio.sleep(0.02)
        await receiver.start()
        await settled(store, hook.id, 1)
    finally:
        await send.close()
        await receiver.stop()
    (delivery,), _ = await store.list_deliveries(hook.id)
    assert delivery.state == "delivered"
    assert send.results["delivered"] == 1 and send.results["retried"] == delivery.attempts - 1
    log = delivery.attempt_log
    assert [a.status_code for a in log[:3]] == [503, 503, None]
    assert log[0].error == "HTTP 503" and log[2].error is not None and "timed out" in log[2].error
    assert all(a.status_code is None and a.error for a in log[3:-1])  # refused
    assert any("Connect" in (a.error or "") for a in log[3:-1])
    assert log[-1].status_code == 204 and log[-1].error is None
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1
    times = [a.at for a in log]
    assert times == sorted(times)


async def test_one_streams_order_is_kept_and_nothing_else_waits(store: Store) -> None:
    """Endpoint A refuses stream s1's first event: s1's second waits behind it, s2's goes;
    endpoint B gets all three meanwhile. Once A recovers, s1's events arrive in order."""
    a_down = True

    async def a_answer(request: Received) -> Reply:
        if a_down and request.json()["session"]["id"] == "x1":
            return 500, None
        return 200, {"ok": True}

    a = await Receiver(a_answer).start()
    b = await Receiver().start()
    hook_a = await Webhooks(store).create(a.url, ["stream.started"])
    hook_b = await Webhooks(store).create(b.url, ["stream.started"])
    send = dispatcher(store)
    send.start()
    try:
        await started(store, "x1", "s1")
        await started(store, "x2", "s1")
        await started(store, "x3", "s2")
        await b.wait_for(3)
        await settled(store, hook_b.id, 3)
        async with asyncio.timeout(20):
            while sum(r.json()["session"]["id"] == "x1" for r in a.requests) < 3:
                await asyncio.sleep(0.02)
        seen_a = [r.json()["session"]["id"] for r in a.requests]
        assert "x3" in seen_a and "x2" not in seen_a
        a_down = False
        await settled(store, hook_a.id, 3)
    finally:
        await send.close()
        await a.stop()
        await b.stop()
    seen_b = [r.json()["session"]["id"] for r in b.requests]
    assert sorted(seen_b) == ["x1", "x2", "x3"]
    assert seen_b.index("x1") < seen_b.index("x2")  # per stream, in order
    order_a = [r.json()["session"]["id"] for r in a.requests if r.json()["stream"]["id"] == "s1"]
    assert order_a[-2:] == ["x1", "x2"] and order_a.count("x2") == 1


async def test_an_answer_that_never_ends_is_a_timeout(store: Store) -> None:
    """A receiver that sends its headers a byte at a time never makes a read wait past
    the timeout; the attempt still ends at it."""
    drip = await DripServer(interval=0.05).start()
    hook = await Webhooks(store).create(drip.url, ["stream.started"])
    send = dispatcher(store)
    send.start()
    try:
        await started(store, "x1")
        async with asyncio.timeout(20):
            while True:
                (delivery,), _ = await store.list_deliveries(hook.id)
                if delivery.attempts >= 1:
                    break
                await asyncio.sleep(0.02)
    finally:
        await send.close()
        await drip.stop()
    (attempt, *_) = delivery.attempt_log
    assert attempt.status_code is None and attempt.error == "timed out after 0.5 s"
    assert attempt.latency < 5.0  # ended at the 0.5 s bound, not after the whole drip
    assert delivery.state == "pending"


async def test_a_delivery_is_given_up_and_the_next_one_goes(store: Store) -> None:
    async def refuse(request: Received) -> Reply:
        return (410, None) if request.json()["session"]["id"] == "x1" else (200, None)

    receiver = await Receiver(refuse).start()
    hook = await Webhooks(store).create(receiver.url, ["stream.started"])
    policy = DeliveryPolicy(
        timeout=0.5, retry_min=0.05, retry_max=0.1, give_up_after=1.0, poll_interval=0.05
    )
    send = dispatcher(store, policy)
    send.start()
    try:
        await started(store, "x1")
        await started(store, "x2")
        await settled(store, hook.id, 2)
    finally:
        await send.close()
        await receiver.stop()
    deliveries, _ = await store.list_deliveries(hook.id)
    states = {d.session_id: d.state for d in deliveries}
    assert states == {"x1": "failed", "x2": "delivered"}
    failed = next(d for d in deliveries if d.session_id == "x1")
    assert failed.attempts >= 2 and all(a.status_code == 410 for a in failed.attempt_log)


async def test_settled_deliveries_past_keep_days_are_swept_at_start(store: Store) -> None:
    receiver = await Receiver().start()
    hook = await Webhooks(store).create(receiver.url, ["stream.started"])
    send = dispatcher(store)
    send.start()
    try:
        await started(store, "x1")
        await settled(store, hook.id, 1)
    finally:
        await send.close()
        await receiver.stop()
    assert (await store.list_deliveries(hook.id))[1] == 1
    keeps = dispatcher(store, DeliveryPolicy(poll_interval=0.05, keep_days=30))
    keeps.start()
    await asyncio.sleep(0.2)
    await keeps.close()
    assert (await store.list_deliveries(hook.id))[1] == 1  # younger than 30 days
    sweeps = dispatcher(store, DeliveryPolicy(poll_interval=0.05, keep_days=1e-9))
    sweeps.start()
    try:
        async with asyncio.timeout(10):
            while (await store.list_deliveries(hook.id))[1]:
                await asyncio.sleep(0.02)
    finally:
        await sweeps.close()


async def test_stream_created_and_deleted_carry_the_stream(store: Store) -> None:
    receiver = await Receiver().start()
    hook = await Webhooks(store).create(receiver.url, ["stream.created", "stream.deleted"])
    streams = Streams(store)
    send = dispatcher(store)
    send.start()
    try:
        stream, key = await streams.create("studio")
        assert await streams.delete(stream.id)
        await settled(store, hook.id, 2)
    finally:
        await send.close()
        await receiver.stop()
    created, deleted = (r.json() for r in receiver.requests)
    assert created["event"] == "stream.created" and deleted["event"] == "stream.deleted"
    assert created["stream"]["id"] == deleted["stream"]["id"] == stream.id
    assert deleted["stream"]["deleted"] is True and deleted["session"] is None
    assert all(key not in r.body.decode() for r in receiver.requests)


class BrokenPayloads(Payloads):
    """Fails to make bodies while ``broken``."""

    broken = True

    async def body(self, delivery: PendingDelivery) -> str:
        if self.broken:
            raise RuntimeError("the ledger is unreadable")
        return await super().body(delivery)


async def test_a_body_that_cannot_be_made_backs_off_as_an_attempt(store: Store) -> None:
    receiver = await Receiver().start()
    hook = await Webhooks(store).create(receiver.url, ["stream.started"])
    payloads = BrokenPayloads(store, ingest_urls=["rtmp://ingest.test/live"], playback_base=None)
    send = Dispatcher(store, payloads, FAST, rand=random.Random(3))
    send.start()
    try:
        await started(store, "x1")
        async with asyncio.timeout(20):
            while (await store.list_deliveries(hook.id))[0][0].attempts < 2:
                await asyncio.sleep(0.02)
        payloads.broken = False
        await settled(store, hook.id, 1)
    finally:
        await send.close()
        await receiver.stop()
    (delivery,), _ = await store.list_deliveries(hook.id)
    assert delivery.state == "delivered" and len(receiver.requests) == 1
    errors = [a.error for a in delivery.attempt_log]
    assert errors[0] == "cannot make the body: the ledger is unreadable" and errors[-1] is None


async def test_a_disabled_or_unsubscribed_webhook_gets_nothing(store: Store) -> None:
    receiver = await Receiver().start()
    hooks = Webhooks(store)
    off = await hooks.create(receiver.url, ["stream.started"], disabled=True)
    other = await hooks.create(receiver.url, ["recording.ready"])
    on = await hooks.create(receiver.url, ["stream.started"])
    send = dispatcher(store)
    send.start()
    try:
        await started(store, "x1")
        await settled(store, on.id, 1)
    finally:
        await send.close()
        await receiver.stop()
    assert len(receiver.requests) == 1
    assert (await store.list_deliveries(off.id))[1] == 0
    assert (await store.list_deliveries(other.id))[1] == 0


async def accept_time(stack: Stack, key: str) -> tuple[float, float]:
    """Publish with ``key``: (when it was asked, when it was accepted), monotonic."""
    asked = time.monotonic()
    publisher = await SocketPublisher.open(stack.rtmp.port, name=key)
    await publisher.publish()
    accepted = time.monotonic()
    publisher.close()
    return asked, accepted


@pytest.mark.slow
async def test_a_slow_receiver_does_not_delay_a_publishs_accept(tmp_path: Path) -> None:
    """The receiver takes 5 s over each delivery; a publish made while it holds one is
    accepted before it answers. The figures (pytest -s): the accept with no delivery in
    flight, and with one held."""
    answered: list[float] = []

    async def slow(_: Received) -> Reply:
        await asyncio.sleep(5.0)
        answered.append(time.monotonic())
        return 204, None

    receiver = await Receiver(slow).start()
    stack = await start_stack(tmp_path)
    send = dispatcher(stack.store, DeliveryPolicy(timeout=30.0, poll_interval=0.05))
    send.start()
    try:
        _, key = await stack.streams.create("cam")  # no webhook yet: no event
        asked, accepted = await accept_time(stack, key)
        baseline = accepted - asked
        await Webhooks(stack.store).create(receiver.url, ["stream.created", "stream.started"])
        await stack.streams.create("other")  # stream.created: the receiver holds it
        (first,) = await receiver.wait_for(1)
        asked, accepted = await accept_time(stack, key)
        assert not answered, "the receiver answered before the publish was accepted"
        print(
            f"\npublish accepted in {baseline * 1000:.1f} ms with no delivery in flight, "
            f"{(accepted - asked) * 1000:.1f} ms while the receiver held one "
            f"({(accepted - first.at) * 1000:.0f} ms into its 5000 ms)"
        )
    finally:
        await send.close()
        await stack.close()
        await receiver.stop()
    assert json.loads(first.body)["event"] == "stream.created"
