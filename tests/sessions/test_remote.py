"""The owner across processes, in one process: workers' :class:`RemoteSessions` talk to the
main process's :class:`StreamOwner` through :class:`WorkerHolders`, over a stand-in channel
that carries each message as JSON, in order (the real channel is tested on its own)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ingest.rtmp.events import EndCause
from sessions.owner import REPLACED_REASON, DuplicatePolicy, End, HolderKey, StreamOwner
from sessions.process_messages import ChannelClosed, Close, Message, decode, encode
from sessions.remote import RemoteSessions, WorkerHolders
from storage.models import EndReason, SessionRecord
from tests.sessions.test_owner import Holder, Keys, attempt, record


def _trip(message: Message) -> Message:
    return decode(json.loads(json.dumps(encode(message))))


class Link:
    """One end of the stand-in channel."""

    def __init__(self) -> None:
        self.peer: Link | None = None
        self.on_request: Any = None
        self.on_notice: Any = None
        self.closed = False
        self.sent: list[Message] = []

    def notify(self, message: Message) -> None:
        if self.closed:
            return
        self.sent.append(message)
        assert self.peer is not None
        self.peer.on_notice(_trip(message))

    async def request(self, message: Message) -> Any:
        if self.closed:
            raise ChannelClosed("closed")
        assert self.peer is not None
        answer = await self.peer.on_request(_trip(message))
        return json.loads(json.dumps(answer))


class Worker:
    """A worker's side: its RemoteSessions, and the main process's WorkerHolders for it."""

    def __init__(self, owner: StreamOwner, number: int) -> None:
        here, there = Link(), Link()
        here.peer, there.peer = there, here
        self.link = here
        self.remote = RemoteSessions(here)
        self.holders = WorkerHolders(owner, there, number)
        there.on_request = self.holders.request
        there.on_notice = self._main_notice
        here.on_notice = self._worker_notice
        self.number = number

    def _main_notice(self, message: Message) -> None:
        assert self.holders.notice(message), message

    def _worker_notice(self, message: Message) -> None:
        assert isinstance(message, Close)
        self.remote.close(message)

    def holder(self, connection: int) -> Holder:
        return Holder(self.number, connection)


def main(
    policy: DuplicatePolicy = DuplicatePolicy.REPLACE, window: float = 0.0
) -> tuple[StreamOwner, Keys]:
    keys = Keys()
    return StreamOwner(keys, policy=policy, reconnect_window=window), keys


async def test_a_publisher_on_another_worker_replaces_the_first_where_it_is() -> None:
    owner, _ = main()
    one, two = Worker(owner, 1), Worker(owner, 2)
    first, second = one.holder(1), two.holder(2)
    assert (await one.remote.claim(attempt(1, "k1"), first)).allowed
    first.record = record("a", "s1")
    one.remote.opened(first, first.record)
    assert [r.id for r in owner.live_sessions()] == ["a"]
    decision = await two.remote.claim(attempt(2, "k1"), second)
    assert decision.allowed and decision.stream_id == "s1"
    # The owner closed the first in its worker, which ends it as the owner asked.
    assert first.ends == [(EndReason.REPLACED, REPLACED_REASON)]
    lease = owner.lease("s1")
    assert lease is not None and lease.holder.key == HolderKey(2, 2)
    end = await one.remote.disconnected(first, EndCause.CLOSED_LOCALLY, REPLACED_REASON)
    assert end == End(EndReason.REPLACED)
    assert owner.lease("s1") is not None


async def test_reject_holds_across_workers_until_the_holder_is_done() -> None:
    owner, _ = main(DuplicatePolicy.REJECT)
    one, two = Worker(owner, 1), Worker(owner, 2)
    first = one.holder(1)
    await one.remote.claim(attempt(1, "k1"), first)
    refused = await two.remote.claim(attempt(2, "k1"), two.holder(2))
    assert (refused.allowed, refused.code) == (False, "NetStream.Publish.BadName")
    end = await one.remote.disconnected(first, EndCause.UNPUBLISHED, "sent FCUnpublish")
    assert end == End(EndReason.UNPUBLISHED)
    assert (await two.remote.claim(attempt(3, "k1"), two.holder(3))).allowed


async def test_a_publish_abandoned_while_authorized_claims_nothing() -> None:
    owner, keys = main(DuplicatePolicy.REJECT)
    one, two = Worker(owner, 1), Worker(owner, 2)
    keys.gate.clear()
    claim = asyncio.ensure_future(one.remote.claim(attempt(7, "k1"), one.holder(7)))
    await asyncio.sleep(0)
    # The connection went while its key was being checked (the listener cancels).
    claim.cancel()
    await asyncio.sleep(0)
    keys.gate.set()
    await asyncio.sleep(0)
    assert owner.lease("s1") is None
    # So the stream is free for the next publisher, even under "reject".
    assert (await two.remote.claim(attempt(8, "k1"), two.holder(8))).allowed
    # An accepted publish whose connection went before it started gives it back too.
    owner2, _ = main(DuplicatePolicy.REJECT)
    worker = Worker(owner2, 1)
    decision = await worker.remote.claim(attempt(9, "k1"), worker.holder(9))
    assert decision.release is not None
    decision.release()
    assert owner2.lease("s1") is None


async def test_reports_reach_the_owner_and_a_kick_waits_for_the_workers_store() -> None:
    owner, _ = main()
    one = Worker(owner, 1)
    holder = one.holder(1)
    await one.remote.claim(attempt(1, "k1"), holder)
    holder.record = record("a", "s1")
    one.remote.opened(holder, holder.record)
    counted = record("a", "s1")
    counted.media_bytes = 777
    one.remote.saved([counted])
    live = owner.live_session("s1")
    assert live is not None and live.media_bytes == 777
    assert owner.holding(1) == 1
    kick = asyncio.ensure_future(owner.kick("a"))
    await asyncio.sleep(0)
    assert holder.ends == [(EndReason.KICKED, "kicked by an operator")]
    end = await one.remote.disconnected(holder, EndCause.CLOSED_LOCALLY, "kicked")
    assert end.reason is EndReason.KICKED
    await asyncio.sleep(0)
    assert not kick.done()
    one.remote.closed("a")
    assert await kick


async def test_a_worker_that_lost_the_main_process_ends_as_last_asked() -> None:
    owner, _ = main()
    one = Worker(owner, 1)
    kicked, other = one.holder(1), one.holder(2)
    await one.remote.claim(attempt(1, "k1"), kicked)
    await one.remote.claim(attempt(2, "k2"), other)
    kicked.record = record("a", "s1")
    one.remote.opened(kicked, kicked.record)
    kick = asyncio.ensure_future(owner.kick("a"))
    await asyncio.sleep(0)
    one.link.closed = True
    end = await one.remote.disconnected(kicked, EndCause.CLOSED_LOCALLY, "kicked")
    assert end == End(EndReason.KICKED)
    end = await one.remote.disconnected(other, EndCause.CLOSED_LOCALLY, "server shutting down")
    assert end == End(EndReason.SHUTDOWN)
    refused = await one.remote.claim(attempt(3, "k3"), one.holder(3))
    assert not refused.allowed and refused.code == "NetStream.Publish.Denied"
    kick.cancel()


async def test_a_dead_worker_hands_back_only_its_own_sessions() -> None:
    owner, _ = main()
    one, two = Worker(owner, 1), Worker(owner, 2)
    for worker, conn, key, session in ((one, 1, "k1", "a"), (two, 2, "k2", "b")):
        holder = worker.holder(conn)
        await worker.remote.claim(attempt(conn, key), holder)
        worker.remote.opened(holder, SessionRecord(session, "s", "s", 1.0, 1.0, 1.0))
    assert one.holders.lost() == ["a"]
    assert [r.id for r in owner.live_sessions()] == ["b"]
    assert owner.lease("s1") is None


async def test_a_reconnect_on_another_worker_gets_the_session_over_the_channel() -> None:
    owner, _ = main(window=10.0)
    one, two = Worker(owner, 1), Worker(owner, 2)
    first = one.holder(1)
    assert (await one.remote.claim(attempt(1, "k1"), first)).allowed
    first.record = record("a", "s1")
    one.remote.opened(first, first.record)
    assert await one.remote.disconnected(first, EndCause.IDLE_TIMEOUT, "idle") is None
    left = record("a", "s1")
    left.status = "reconnecting"
    left.bytes_received = 4321
    left.gaps = [{"from": 990.0, "to": 992.5, "seconds": 2.5}]
    one.remote.suspended(left)
    assert owner.live_session("s1") == left
    second = two.holder(7)
    decision = await two.remote.claim(attempt(7, "k1"), second)
    assert decision.allowed and decision.stream_id == "s1"
    # The record came back through JSON as it went, gaps and status included.
    assert second.resumed == [left]
    lease = owner.lease("s1")
    assert lease is not None and lease.holder.key == HolderKey(2, 7)
