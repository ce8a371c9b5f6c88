"""The reconnect window in the owner of the live streams, alone: stand-in holders and
authorizer, a fake clock, no sockets and no store (the helpers are test_owner's)."""

from __future__ import annotations

import asyncio

import pytest

from ingest.rtmp.events import EndCause
from sessions.owner import DuplicatePolicy, End, StreamOwner, StreamState
from storage.models import EndReason, SessionRecord
from tests.sessions.test_owner import Holder, attempt, opened, owner

WINDOW = 10.0


class Ends:
    """The owner's ``expire``: the sessions it had this process end, and how."""

    def __init__(self, own: StreamOwner) -> None:
        self.own = own
        self.ended: list[tuple[str, End, str | None]] = []
        own.expire = self

    def __call__(self, record: SessionRecord, end: End, playback_id: str | None) -> None:
        self.ended.append((record.id, end, playback_id))


async def dropped(
    own: StreamOwner, holder: Holder, cause: EndCause = EndCause.CLOSED_BY_PEER
) -> SessionRecord:
    """``holder``'s connection drops and it reports the session as it left it."""
    assert await own.disconnected(holder, cause, "connection lost") is None
    assert holder.record is not None
    holder.record.status = "reconnecting"
    own.suspended(holder.record)
    return holder.record


async def live_one(own: StreamOwner, connection: int = 1) -> Holder:
    holder = Holder(connection // 10, connection)
    assert (await own.claim(attempt(connection, "k1"), holder)).allowed
    await opened(own, holder, "a", "s1")
    return holder


@pytest.mark.parametrize(
    ("cause", "reason", "error"),
    [
        (EndCause.CLOSED_BY_PEER, EndReason.DISCONNECTED, None),
        (EndCause.IDLE_TIMEOUT, EndReason.TIMEOUT, None),
        (EndCause.PROTOCOL_ERROR, EndReason.DISCONNECTED, "connection lost"),
    ],
)
async def test_a_drop_keeps_the_session_until_the_window_passes(
    cause: EndCause, reason: EndReason, error: str | None
) -> None:
    own, _, clock = owner(window=WINDOW)
    ends = Ends(own)
    holder = await live_one(own)
    clock.now += 3
    record = await dropped(own, holder, cause)
    assert own.lease("s1") is None and own.state("s1") is StreamState.RECONNECTING
    assert own.live_sessions() == [record] and own.live_session("s1") is record
    clock.now += WINDOW - 0.5
    await own.check_streams()
    assert ends.ended == []
    clock.now += 1
    await own.check_streams()
    # Ended as its drop meant, by this process (the stream's playback id names its media).
    assert ends.ended == [("a", End(reason, error), None)]
    assert own.state("s1") is None and own.live_sessions() == []
    kick = asyncio.ensure_future(own.kick("a"))
    assert not await kick  # no longer open


async def test_a_claim_within_the_window_continues_the_session() -> None:
    own, _, clock = owner(window=WINDOW)
    ends = Ends(own)
    first = await live_one(own, 1)
    record = await dropped(own, first)
    clock.now += 4
    second = Holder(2, 7)
    decision = await own.claim(attempt(7, "k1"), second)
    assert decision.allowed and decision.stream_id == "s1"
    assert second.resumed == [record]
    lease = own.lease("s1")
    assert lease is not None and lease.holder is second and lease.resumed
    assert own.state("s1") is StreamState.LIVE
    # Until its first media message the session still reads as reconnecting, as left.
    assert own.live_sessions() == [record] and second.refreshed == []
    continued = SessionRecord("a", "s1", "s1", 1000.0, clock.now, clock.now, reconnects=1)
    own.opened(second, continued)
    assert own.live_sessions() == [continued]
    clock.now += WINDOW * 3
    await own.check_streams()
    assert ends.ended == []  # the window closed when the claim came
    assert await own.disconnected(second, EndCause.UNPUBLISHED, "FCUnpublish") == End(
        EndReason.UNPUBLISHED
    )


async def test_a_claim_waits_for_the_dropped_holder_to_leave_the_session() -> None:
    own, _, _ = owner(window=WINDOW)
    first = await live_one(own, 1)
    assert await own.disconnected(first, EndCause.CLOSED_BY_PEER, "reset") is None
    second = Holder(0, 2)
    claim = asyncio.ensure_future(own.claim(attempt(2, "k1"), second))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not claim.done(), "granted before the last segment and counters were left"
    assert first.record is not None
    final = SessionRecord("a", "s1", "s1", 1000.0, 1009.0, 1009.0, bytes_received=123)
    own.suspended(final)
    assert (await claim).allowed
    assert second.resumed == [final]


@pytest.mark.parametrize(
    ("cause", "asked", "reason"),
    [
        (EndCause.UNPUBLISHED, None, EndReason.UNPUBLISHED),
        (EndCause.CLOSED_LOCALLY, None, EndReason.SHUTDOWN),
        (EndCause.CLOSED_LOCALLY, EndReason.KICKED, EndReason.KICKED),
        (EndCause.CLOSED_BY_PEER, EndReason.KEY_DISABLED, EndReason.KEY_DISABLED),
    ],
)
async def test_an_explicit_stop_or_an_asked_end_has_no_window(
    cause: EndCause, asked: EndReason | None, reason: EndReason
) -> None:
    own, _, _ = owner(window=WINDOW)
    holder = await live_one(own)
    if asked is not None:
        lease = own.lease("s1")
        assert lease is not None
        lease.asked = asked
    assert await own.disconnected(holder, cause, "over") == End(reason)
    assert own.state("s1") is None and own.live_sessions() == []


async def test_a_window_of_zero_ends_at_once() -> None:
    own, _, _ = owner(window=0.0)
    holder = await live_one(own)
    assert await own.disconnected(holder, EndCause.CLOSED_BY_PEER, "reset") == End(
        EndReason.DISCONNECTED
    )
    # A window set later (a reload) applies to the next drop.
    own.reconnect_window = WINDOW
    again = Holder(0, 2)
    await own.claim(attempt(2, "k1"), again)
    await opened(own, again, "b", "s1")
    assert await own.disconnected(again, EndCause.CLOSED_BY_PEER, "reset") is None


async def test_a_publish_without_a_session_has_no_window() -> None:
    own, _, _ = owner(window=WINDOW)
    holder = Holder(0, 1)
    await own.claim(attempt(1, "k1"), holder)
    assert await own.disconnected(holder, EndCause.CLOSED_BY_PEER, "reset") == End(
        EndReason.DISCONNECTED
    )
    assert own.state("s1") is None


@pytest.mark.parametrize("how", ["kick", "end_stream"])
async def test_a_reconnecting_session_is_kicked_or_disabled_at_once(how: str) -> None:
    own, _, _ = owner(window=WINDOW)
    ends = Ends(own)
    await dropped(own, await live_one(own))
    call = own.kick("a") if how == "kick" else own.end_stream("s1")
    ending = asyncio.ensure_future(call)
    for _ in range(3):
        await asyncio.sleep(0)
    reason = EndReason.KICKED if how == "kick" else EndReason.KEY_DISABLED
    assert ends.ended == [("a", End(reason), None)]
    assert not ending.done(), "answered before the end was stored"
    own.closed("a")
    assert await ending
    assert own.state("s1") is None
    assert not await own.kick("a") and not await own.end_stream("s1")


async def test_shutdown_ends_reconnecting_sessions_once_they_are_left() -> None:
    own, _, _ = owner(window=WINDOW)
    ends = Ends(own)
    await dropped(own, await live_one(own, 1))
    other = Holder(0, 2)
    await own.claim(attempt(2, "k2"), other)
    await opened(own, other, "b", "s2")
    assert await own.disconnected(other, EndCause.IDLE_TIMEOUT, "idle") is None  # not left yet
    own.end_all(EndReason.SHUTDOWN, "server shutting down")
    assert ends.ended == [("a", End(EndReason.SHUTDOWN), None)]
    assert other.record is not None
    own.suspended(other.record)
    assert ends.ended[1:] == [("b", End(EndReason.SHUTDOWN), None)]
    assert own.live_sessions() == []


async def test_a_reconnect_that_drops_before_its_media_waits_again() -> None:
    own, _, clock = owner(window=WINDOW)
    ends = Ends(own)
    await dropped(own, await live_one(own, 1))
    clock.now += 8
    second = Holder(0, 2)
    await own.claim(attempt(2, "k1"), second)
    assert await own.disconnected(second, EndCause.CLOSED_BY_PEER, "reset") is None
    # Nothing to leave (it never opened the session): a new window, at once.
    assert own.state("s1") is StreamState.RECONNECTING
    clock.now += WINDOW - 1
    await own.check_streams()
    assert ends.ended == []
    third = Holder(0, 3)
    claim = asyncio.wait_for(own.claim(attempt(3, "k1"), third), 1)
    assert (await claim).allowed and [r.id for r in third.resumed] == ["a"]
    # This one stops before its media: the session ends as it says, by this process.
    assert await own.disconnected(third, EndCause.UNPUBLISHED, "FCUnpublish") == End(
        EndReason.UNPUBLISHED
    )
    assert ends.ended == [("a", End(EndReason.UNPUBLISHED), None)]


async def test_a_reconnect_that_never_starts_gives_the_session_back_to_its_window() -> None:
    own, _, _ = owner(window=WINDOW)
    Ends(own)
    await dropped(own, await live_one(own, 1))
    second = Holder(0, 2)
    decision = await own.claim(attempt(2, "k1"), second)
    assert decision.release is not None
    decision.release()
    assert own.state("s1") is StreamState.RECONNECTING
    assert [r.id for r in own.live_sessions()] == ["a"]


async def test_a_process_that_dies_before_leaving_the_session_hands_it_back() -> None:
    own, _, _ = owner(window=WINDOW)
    holder = await live_one(own, 11)  # process 1
    assert await own.disconnected(holder, EndCause.CLOSED_BY_PEER, "reset") is None
    assert own.lost(1) == ["a"]  # to be ended as server_restart
    assert own.state("s1") is None
    # One that left it first has no part in it any more.
    again = await live_one(own, 12)
    again.record = SessionRecord("a", "s1", "s1", 1000.0, 1000.0, 1000.0)
    await dropped(own, again)
    assert own.lost(1) == []
    assert own.state("s1") is StreamState.RECONNECTING


async def test_a_stream_disabled_behind_the_owners_back_ends_its_reconnecting_session() -> None:
    own, _, _ = owner(window=WINDOW, enabled={"s2"})
    ends = Ends(own)
    await dropped(own, await live_one(own))
    await own.check_streams()
    assert ends.ended == [("a", End(EndReason.KEY_DISABLED), None)]
    assert own.state("s1") is None
    assert own.asked == [["s1"]]  # type: ignore[attr-defined]


async def test_reject_refuses_a_second_publisher_but_not_the_reconnect() -> None:
    own, _, _ = owner(DuplicatePolicy.REJECT, window=WINDOW)
    first = await live_one(own, 1)
    refused = await own.claim(attempt(2, "k1"), Holder(0, 2))
    assert not refused.allowed  # the first is still connected: duplicate_publish holds
    await dropped(own, first)
    back = Holder(0, 3)
    assert (await own.claim(attempt(3, "k1"), back)).allowed
    assert [r.id for r in back.resumed] == ["a"]
