"""KeyAuthorizer with a controlled clock: refusal delays, throttling, and its aging out."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.hooks import PublishAttempt
from sessions import auth
from sessions.auth import KeyAuthorizer, address_of
from sessions.streams import Streams
from sessions.writes import StoreWrites
from storage import Store
from tests.ingest.rtmp.wire import FakeClock


def attempt(key: str, remote: str = "192.0.2.7:50000") -> PublishAttempt:
    return PublishAttempt(1, remote, "live", key, "", None)


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    return await Store.open(tmp_path / "db.sqlite")


async def test_refusals_wait_a_random_delay_in_the_configured_range(store: Store) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    authorizer = KeyAuthorizer(
        Streams(store), StoreWrites(store), reject_delay=(0.2, 0.6), sleep=sleep
    )
    for i in range(20):
        decision = await authorizer.authorize(attempt(f"nope-{i}", f"198.51.100.{i}:1"))
        assert not decision.allowed and decision.code == "NetStream.Publish.BadName"
    assert len(slept) == 20
    assert all(0.2 <= s <= 0.6 for s in slept)
    assert len(set(slept)) > 1
    await store.close()


async def test_throttle_ages_out_with_the_window(store: Store) -> None:
    clock = FakeClock()
    streams = Streams(store)
    _, key = await streams.create("cam")
    authorizer = KeyAuthorizer(
        streams,
        StoreWrites(store),
        reject_delay=(0, 0),
        throttle_failures=3,
        throttle_window=60,
        clock=clock,
    )
    for _ in range(3):
        assert not (await authorizer.authorize(attempt("wrong"))).allowed
    refused = await authorizer.authorize(attempt(key))
    assert not refused.allowed, "even the right key is refused while throttled"
    assert refused.code == "NetStream.Publish.Denied"
    other = await authorizer.authorize(attempt(key, "203.0.113.9:4000"))
    assert other.allowed, "other addresses are unaffected"
    clock.now += 61
    accepted = await authorizer.authorize(attempt(key))
    assert accepted.allowed and accepted.stream_name == "cam"
    await store.close()


async def test_a_spray_of_addresses_does_not_grow_memory_forever(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "_MAX_TRACKED", 50)
    clock = FakeClock()
    authorizer = KeyAuthorizer(
        Streams(store), StoreWrites(store), reject_delay=(0, 0), throttle_window=10, clock=clock
    )
    for i in range(500):
        clock.now += 1
        await authorizer.authorize(attempt("x", f"10.0.{i // 256}.{i % 256}:1"))
    assert len(authorizer._failures) <= 60
    await store.close()


@pytest.mark.parametrize(
    ("remote", "host"),
    [("192.0.2.1:1935", "192.0.2.1"), ("::1:5000", "::1"), ("-", "-")],
)
def test_address_of(remote: str, host: str) -> None:
    assert address_of(remote) == host
