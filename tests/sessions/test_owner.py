"""The owner of the live streams, alone: stand-in holders and authorizer, a fake clock, no
sockets and no store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from ingest.hooks import Decision, PublishAttempt
from ingest.rtmp.events import EndCause
from sessions.owner import (
    REPLACED_REASON,
    DuplicatePolicy,
    End,
    HolderKey,
    StreamOwner,
    end_for,
)
from storage.models import EndReason, SessionRecord


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Keys:
    """An authorizer: key ``k<n>`` is stream ``s<n>``; ``bad`` is refused; with ``gate``
    cleared, every check waits for it."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        await self.gate.wait()
        if attempt.key == "bad":
            return Decision(False, "NetStream.Publish.BadName", "unknown stream key")
        if attempt.key.startswith("k"):
            stream = "s" + attempt.key[1:]
            return Decision(True, stream_id=stream, stream_name=f"cam {stream}")
        return Decision(True)  # a stream the store does not know: the key names it


class Holder:
    """A connection as the owner acts on it; remembers what it was told."""

    def __init__(self, process: int, connection: int) -> None:
        self.key = HolderKey(process, connection)
        self.ends: list[tuple[EndReason, str]] = []
        self.refreshed: list[float] = []
        self.record: SessionRecord | None = None
        #: The reconnecting sessions its claims handed it.
        self.resumed: list[SessionRecord] = []

    def end(self, reason: EndReason, why: str) -> None:
        self.ends.append((reason, why))

    def refresh(self, now: float) -> None:
        self.refreshed.append(now)
        if self.record is not None:
            self.record.updated_at = now

    def resume(self, record: SessionRecord) -> None:
        self.resumed.append(record)


def attempt(connection: int, key: str) -> PublishAttempt:
    return PublishAttempt(connection, f"10.0.0.{connection}:5000", "live", key, "", None)


def record(session_id: str, stream_id: str, at: float = 1000.0) -> SessionRecord:
    return SessionRecord(session_id, stream_id, stream_id, at, at, at)


def owner(
    policy: DuplicatePolicy = DuplicatePolicy.REPLACE,
    clock: Clock | None = None,
    enabled: set[str] | None = None,
    window: float = 0.0,
) -> tuple[StreamOwner, Keys, Clock]:
    keys = Keys()
    clock = clock or Clock()
    asked: list[list[str]] = []

    async def enabled_streams(stream_ids: Iterable[str]) -> set[str]:
        ids = list(stream_ids)
        asked.append(ids)
        return set(ids) & (enabled or set())

    own = StreamOwner(
        keys,
        policy=policy,
        enabled_streams=enabled_streams if enabled is not None else None,
        reconnect_window=window,
        clock=clock,
    )
    own.asked = asked  # type: ignore[attr-defined]
    return own, keys, clock


async def opened(own: StreamOwner, holder: Holder, session_id: str, stream_id: str) -> None:
    holder.record = record(session_id, stream_id)
    own.opened(holder, holder.record)


async def test_a_claim_grants_the_stream_to_its_holder_at_the_clock() -> None:
    own, _, clock = owner()
    first = Holder(0, 1)
    decision = await own.claim(attempt(1, "k1"), first)
    assert decision.allowed
    assert (decision.stream_id, decision.stream_name) == ("s1", "cam s1")
    lease = own.lease("s1")
    assert lease is not None and lease.holder is first and lease.granted_at == clock.now
    # A key the authorizer names no stream for is its own stream.
    other = await own.claim(attempt(2, "loose"), Holder(0, 2))
    assert (other.stream_id, other.stream_name) == ("loose", "loose")
    refused = await own.claim(attempt(3, "bad"), Holder(0, 3))
    assert not refused.allowed and refused.release is None
    assert own.lease("bad") is None


async def test_a_second_publisher_replaces_the_first_and_the_first_ends_as_replaced() -> None:
    own, _, clock = owner()
    first, second = Holder(1, 1), Holder(2, 9)
    await own.claim(attempt(1, "k1"), first)
    await opened(own, first, "a", "s1")
    assert [r.id for r in own.live_sessions()] == ["a"]
    clock.now += 5
    await own.claim(attempt(9, "k1"), second)
    # The first holder is told to end; the stream is the second's at once, and the old
    # session leaves the live view (it is ending).
    assert first.ends == [(EndReason.REPLACED, REPLACED_REASON)]
    lease = own.lease("s1")
    assert lease is not None and lease.holder is second and lease.granted_at == clock.now
    assert own.live_sessions() == []
    # However the first connection then closes, its session ends as replaced.
    end = await own.disconnected(first, EndCause.CLOSED_BY_PEER, "connection lost")
    assert end == End(EndReason.REPLACED)
    assert own.lease("s1") is not None and own.lease("s1").holder is second  # type: ignore[union-attr]
    await opened(own, second, "b", "s1")
    assert [r.id for r in own.live_sessions()] == ["b"]


async def test_reject_refuses_the_newcomer_until_the_stream_is_free() -> None:
    own, _, _ = owner(DuplicatePolicy.REJECT)
    first = Holder(0, 1)
    await own.claim(attempt(1, "k1"), first)
    refused = await own.claim(attempt(2, "k1"), Holder(0, 2))
    assert (refused.allowed, refused.code) == (False, "NetStream.Publish.BadName")
    assert first.ends == []
    await own.disconnected(first, EndCause.UNPUBLISHED, "publisher sent FCUnpublish")
    assert (await own.claim(attempt(3, "k1"), Holder(0, 3))).allowed


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (EndCause.UNPUBLISHED, EndReason.UNPUBLISHED),
        (EndCause.CLOSED_BY_PEER, EndReason.DISCONNECTED),
        (EndCause.IDLE_TIMEOUT, EndReason.TIMEOUT),
        (EndCause.PROTOCOL_ERROR, EndReason.DISCONNECTED),
        (EndCause.CLOSED_LOCALLY, EndReason.SHUTDOWN),
    ],
)
async def test_a_publish_that_ends_by_itself_ends_as_its_cause_means(
    cause: EndCause, reason: EndReason
) -> None:
    own, _, _ = owner()
    holder = Holder(0, 1)
    await own.claim(attempt(1, "k1"), holder)
    await opened(own, holder, "a", "s1")
    end = await own.disconnected(holder, cause, "what happened")
    assert end == End(reason, "what happened" if cause is EndCause.PROTOCOL_ERROR else None)
    assert own.lease("s1") is None and own.live_sessions() == []
    # What the owner asked for wins over how the connection then went.
    assert end_for(cause, "x", EndReason.KICKED).reason is EndReason.KICKED


async def test_a_publish_that_never_starts_gives_the_stream_back() -> None:
    own, _, _ = owner(DuplicatePolicy.REJECT)
    decision = await own.claim(attempt(1, "k1"), Holder(0, 1))
    assert decision.release is not None
    decision.release()
    assert own.lease("s1") is None
    assert (await own.claim(attempt(2, "k1"), Holder(0, 2))).allowed


async def test_a_publish_abandoned_while_authorized_claims_nothing() -> None:
    own, keys, _ = owner(DuplicatePolicy.REJECT)
    keys.gate.clear()
    claim = asyncio.ensure_future(own.claim(attempt(7, "k1"), Holder(3, 7)))
    await asyncio.sleep(0)
    # The connection went while its key was being checked.
    own.release(HolderKey(3, 7))
    keys.gate.set()
    await claim
    assert own.lease("s1") is None
    # So the stream is free for the next publisher, even under "reject".
    assert (await own.claim(attempt(8, "k1"), Holder(4, 8))).allowed


async def test_the_live_view_reads_each_holders_counters_now() -> None:
    own, _, clock = owner()
    here, there = Holder(0, 1), Holder(2, 5)
    await own.claim(attempt(1, "k1"), here)
    await own.claim(attempt(5, "k2"), there)
    assert own.live_sessions() == []  # claimed, no media yet
    await opened(own, here, "a", "s1")
    await opened(own, there, "b", "s2")
    clock.now = 1234.5
    assert {r.id for r in own.live_sessions()} == {"a", "b"}
    assert here.refreshed == [1234.5] and here.record is not None
    assert here.record.updated_at == 1234.5
    # A holder in another process reports its counters at each flush.
    fresh = record("b", "s2")
    fresh.bytes_received = 4096
    own.saved([fresh])
    live = own.live_session("s2")
    assert live is not None and live.bytes_received == 4096
    own.saved([record("nobody", "s9")])  # a session the owner does not know: ignored
    assert (own.holding(0), own.holding(2), own.holding(1)) == (1, 1, 0)
    assert own.live_session("s3") is None


async def test_a_kick_returns_once_the_end_is_in_the_store() -> None:
    own, _, _ = owner()
    holder = Holder(2, 1)
    await own.claim(attempt(1, "k1"), holder)
    await opened(own, holder, "a", "s1")
    assert not await own.kick("nope")
    kick = asyncio.ensure_future(own.kick("a"))
    await asyncio.sleep(0)
    assert holder.ends == [(EndReason.KICKED, "kicked by an operator")]
    assert await own.disconnected(holder, EndCause.CLOSED_LOCALLY, "kicked") == End(
        EndReason.KICKED
    )
    for _ in range(3):
        await asyncio.sleep(0)
    assert not kick.done(), "answered before the end was stored"
    own.closed("a")
    assert await kick
    assert not await own.kick("a")


async def test_a_disabled_stream_ends_at_once_through_the_api() -> None:
    own, _, _ = owner()
    idle = Holder(0, 1)  # accepted, never sent media
    await own.claim(attempt(1, "k1"), idle)
    ending = asyncio.ensure_future(own.end_stream("s1"))
    await asyncio.sleep(0)
    assert idle.ends == [(EndReason.KEY_DISABLED, "stream key disabled")]
    await own.disconnected(idle, EndCause.CLOSED_LOCALLY, "stream key disabled")
    assert await ending  # no session: nothing to wait for in the store
    assert not await own.end_stream("s1")


async def test_streams_disabled_behind_the_owners_back_are_ended_by_the_check() -> None:
    own, _, _ = owner(enabled={"s2"})
    gone, kept, loose = Holder(0, 1), Holder(0, 2), Holder(0, 3)
    await own.claim(attempt(1, "k1"), gone)
    await own.claim(attempt(2, "k2"), kept)
    await own.claim(attempt(3, "loose"), loose)
    await own.check_streams()
    assert gone.ends == [(EndReason.KEY_DISABLED, "stream disabled")]
    assert kept.ends == loose.ends == []
    # Only streams the store knows are asked about.
    assert own.asked == [["s1", "s2"]]  # type: ignore[attr-defined]


async def test_a_dead_process_frees_its_streams_and_hands_back_its_sessions() -> None:
    own, _, _ = owner()
    dead = [Holder(1, n) for n in (1, 2, 3)]
    alive = Holder(2, 4)
    for n, holder in enumerate([*dead, alive], start=1):
        await own.claim(attempt(holder.key.connection, f"k{n}"), holder)
    await opened(own, dead[0], "open", "s1")
    await opened(own, dead[1], "ending", "s2")
    await opened(own, alive, "other", "s4")
    await own.disconnected(dead[1], EndCause.CLOSED_BY_PEER, "gone")  # end not stored yet
    kick = asyncio.ensure_future(own.kick("open"))
    await asyncio.sleep(0)
    assert sorted(own.lost(1)) == ["ending", "open"]
    assert await kick  # its waiter is let go
    assert [own.lease(s) for s in ("s1", "s2", "s3")] == [None, None, None]
    assert [r.id for r in own.live_sessions()] == ["other"]
    assert own.lost(1) == []


async def test_shutdown_asks_every_holder_to_end() -> None:
    own, _, _ = owner()
    holders = [Holder(0, 1), Holder(1, 2)]
    await own.claim(attempt(1, "k1"), holders[0])
    await own.claim(attempt(2, "k2"), holders[1])
    own.end_all(EndReason.SHUTDOWN, "server shutting down")
    assert [h.ends for h in holders] == [[(EndReason.SHUTDOWN, "server shutting down")]] * 2
    end = await own.disconnected(holders[1], EndCause.UNPUBLISHED, "sent deleteStream")
    assert end is not None and end.reason is EndReason.SHUTDOWN
