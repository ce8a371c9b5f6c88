"""The forwarding attachment's own rules (:mod:`ingest.server.forwarding`), driven directly
with a store of the test's: the targets read late (past ``max_buffer``) join at a
keyframe after the stream's headers; a read the store refuses is retried; a publish
without a session forwards nothing; a reload reaches the sessions that start after it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bench.media import make_flv, read_flv_tags
from ingest.config import Config, MultistreamConfig, StorageConfig
from ingest.hooks import Decision, PublishAttempt
from ingest.multistream import ForwardSettings
from ingest.rtmp.events import MetadataReceived, media_received
from ingest.server.forwarding import Forwarder, Forwarders
from ingest.server.runtime import apply_live, build_sessions
from sessions.writes import StoreWrites
from storage import Store
from storage.models import SessionRecord, TargetRecord
from tests.support.listener import Start, listeners

start = pytest.fixture(listeners)


class FakeStore:
    """The two calls the attachment makes: the targets (after ``gate``, failing
    ``failures`` times first) and the event log."""

    def __init__(self, targets: list[TargetRecord], failures: int = 0) -> None:
        self.targets = targets
        self.failures = failures
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.events: list[tuple[str, str | None]] = []

    async def enabled_targets(self, stream_id: str) -> list[TargetRecord]:
        self.reads += 1
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return list(self.targets)

    async def log_event(self, kind: str, *, at: float, **fields: Any) -> None:
        self.events.append((kind, fields.get("reason")))


class Publish:
    def __init__(self) -> None:
        self.attempt = PublishAttempt(
            connection_id=1, remote_addr="127.0.0.1:1", app="live", key="k", query="",
            encoder=None,
        )  # fmt: skip
        self.decision = Decision(True, stream_id="s1", stream_name="cam")


def _forwarder(store: FakeStore, settings: ForwardSettings) -> Forwarder:
    forwarders = Forwarders(store, StoreWrites(store), settings)  # type: ignore[arg-type]
    made = forwarders(Publish())
    assert isinstance(made, Forwarder)
    return made


def _record() -> SessionRecord:
    return SessionRecord(
        id="x1", stream_id="s1", name="cam", created_at=1, last_seen=1, updated_at=1
    )


def _feed(forwarder: Forwarder, tags: list[Any]) -> None:
    for tag in tags:
        forwarder.media(media_received(1, tag.tag_type, tag.timestamp, tag.body))


async def test_targets_read_past_max_buffer_join_at_a_keyframe_after_the_headers(
    tmp_path: Path, start: Start
) -> None:
    ours, recorder = await start()
    store = FakeStore(
        [TargetRecord("t1", "s1", "ours", f"rtmp://127.0.0.1:{ours.port}/live/late", False, 0, 0)]
    )
    store.gate.clear()  # the read waits
    settings = ForwardSettings(max_buffer=64 * 1024, retry_min=0.1, retry_max=0.2)
    forwarder = _forwarder(store, settings)
    clip = make_flv(tmp_path / "clip.flv", seconds=4, size=(320, 240), gop=15, bitrate=600_000)
    tags = [t for t in read_flv_tags(clip) if t.tag_type in (8, 9)]
    record = _record()
    forwarder.metadata(MetadataReceived(1, 0, "onMetaData", {"encoder": "test"}))
    forwarder.opened(record, None)
    half = len(tags) // 2
    _feed(forwarder, tags[:half])
    assert forwarder.engine is not None, "past max_buffer the engine took the stream"
    store.gate.set()
    async with asyncio.timeout(10):
        while forwarder.engine.stats() == [] or forwarder.engine.stats()[0].status != "live":
            await asyncio.sleep(0.02)
    for tag in tags[half:]:  # paced: the live target keeps up (nothing more is skipped)
        _feed(forwarder, [tag])
        await asyncio.sleep(0.005)
    await forwarder.finish(record)
    (sink,) = await recorder.wait_ended()
    got = [(e.message_type, e.payload) for e in sink.media_events]
    sent = [(t.tag_type, t.body) for t in tags]
    configs = [tag for tag in sent if tag[1][1:2] == b"\x00"]
    assert got[:2] == configs
    assert got[2][0] == 9 and got[2][1][0] >> 4 == 1  # a keyframe
    at = sent.index(got[2])
    assert at >= half and got[2:] == sent[at:]
    (entry,) = record.multistream
    headers = sum(len(body) for _, body in configs)
    assert entry["skipped_bytes"] == sum(len(b) for _, b in sent[:at]) - headers
    assert entry["status"] == "ended" and entry["reconnects"] == 0
    await forwarder._forwarders.writes.join()
    assert [kind for kind, _ in store.events] == [
        "multistream.connected",
        "multistream.disconnected",
    ]


async def test_a_refused_read_of_the_targets_is_tried_again(tmp_path: Path) -> None:
    store = FakeStore([], failures=2)
    forwarder = _forwarder(store, ForwardSettings())
    record = _record()
    forwarder.opened(record, None)
    clip = make_flv(tmp_path / "clip.flv", seconds=1, size=(160, 120))
    _feed(forwarder, [t for t in read_flv_tags(clip) if t.tag_type in (8, 9)])
    async with asyncio.timeout(10):
        while store.reads < 3:
            await asyncio.sleep(0.02)
    await forwarder.finish(record)
    assert forwarder.engine is None and record.multistream == []


async def test_a_publish_that_never_opens_a_session_reads_no_targets() -> None:
    store = FakeStore([])
    forwarder = _forwarder(store, ForwardSettings())
    forwarder.metadata(MetadataReceived(1, 0, "onMetaData", {}))
    await forwarder.finish(None)
    assert store.reads == 0 and forwarder.engine is None


async def test_a_reload_gives_sessions_that_start_afterwards_the_new_settings(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "ledger.db")
    config = Config(storage=StorageConfig(data_dir=str(tmp_path)))
    side = build_sessions(config, store, "http://viewer.test")
    try:
        (forwarders,) = [f for f in side.manager.attachment_factories if isinstance(f, Forwarders)]
        assert forwarders.settings == ForwardSettings()
        running = forwarders(Publish())
        assert isinstance(running, Forwarder)
        changed = MultistreamConfig(max_buffer=1 << 20, retry_max=5.0)
        apply_live(Config(storage=config.storage, multistream=changed), side)
        assert forwarders.settings == ForwardSettings.from_config(changed)
        assert running.settings == ForwardSettings(), "a running session keeps its own"
    finally:
        side.executor.shutdown()
        await store.close()


def test_a_targets_entry_goes_on_across_the_parts_of_a_continued_session() -> None:
    from ingest.server.forwarding import _continued

    before = {
        "target_id": "t", "name": "yt", "status": "ended", "connected_seconds": 10.0,
        "bytes_sent": 1000, "reconnects": 1, "skipped_bytes": 5, "last_error": "reset",
    }  # fmt: skip
    now = {
        "target_id": "t", "name": "yt", "status": "live", "connected_seconds": 2.5,
        "bytes_sent": 300, "reconnects": 0, "skipped_bytes": 0, "last_error": None,
    }  # fmt: skip
    merged = _continued(before, now)
    assert merged == {
        "target_id": "t", "name": "yt", "status": "live", "connected_seconds": 12.5,
        "bytes_sent": 1300, "reconnects": 2, "skipped_bytes": 5, "last_error": "reset",
    }  # fmt: skip
    # Not connected yet in this part: no reconnect counted.
    waiting = dict(now, status="connecting", connected_seconds=0.0, bytes_sent=0)
    assert _continued(before, waiting)["reconnects"] == 1
