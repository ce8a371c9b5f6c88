"""Streams: create, look up, page, update, soft-delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import SessionRecord, Store, StreamNameTaken, StreamRecord, hash_key


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "ingest.db") as store:
        yield store


async def make(store: Store, n: int, *, now: float | None = None) -> StreamRecord:
    return await store.create_stream(
        id=f"s{n}",
        name=f"stream-{n}",
        key_hash=hash_key(f"key-{n}"),
        playback_id=f"p{n}",
        now=float(n) if now is None else now,
    )


async def test_create_and_get(store: Store) -> None:
    created = await store.create_stream(
        id="s1", name="main", key_hash=hash_key("k"), playback_id="pb", record=True, now=10.5
    )
    assert created == StreamRecord(
        id="s1",
        name="main",
        key_hash=hash_key("k"),
        playback_id="pb",
        disabled=False,
        record=True,
        created_at=10.5,
        updated_at=10.5,
        last_seen=None,
    )
    assert await store.get_stream("s1") == created
    assert await store.get_stream_by_name("main") == created
    assert await store.find_stream_by_key_hash(hash_key("k")) == created
    assert await store.get_stream("nope") is None
    assert await store.get_stream_by_name("nope") is None
    assert await store.find_stream_by_key_hash(hash_key("other")) is None
    assert await store.get_stream_by_playback_id("pb") == created
    assert await store.get_stream_by_playback_id("nope") is None


async def test_profiles_are_kept_as_given_and_changed_alone(store: Store) -> None:
    ladder = [
        {"name": "360p", "width": 640, "height": 360, "bitrate": 800_000, "fps": 0, "gop": None},
        {"name": "240p", "width": 426, "height": 240, "bitrate": 400_000, "fps": 15, "gop": 2.0},
    ]
    created = await store.create_stream(
        id="s1", name="main", key_hash="h", playback_id="pb", profiles=ladder, now=1.0
    )
    assert created.profiles == ladder
    assert await store.get_stream("s1") == created
    assert (await make(store, 2)).profiles == []
    renamed = await store.update_stream("s1", now=2.0, name="other")
    assert renamed is not None and renamed.profiles == ladder
    cleared = await store.update_stream("s1", now=3.0, profiles=[])
    assert cleared is not None and cleared.profiles == [] and cleared.name == "other"
    assert await store.get_stream("s1") == cleared
    again = await store.update_stream("s1", now=4.0, profiles=ladder[1:])
    assert again is not None and (await store.get_stream("s1")) == again
    assert again.profiles == ladder[1:]


async def test_name_is_unique(store: Store) -> None:
    await make(store, 1)
    with pytest.raises(StreamNameTaken) as info:
        await store.create_stream(
            id="s2", name="stream-1", key_hash="h2", playback_id="p2", now=2.0
        )
    assert isinstance(info.value, ValueError)
    assert "stream-1" in str(info.value)
    assert await store.get_stream("s2") is None
    await make(store, 2)
    with pytest.raises(StreamNameTaken):
        await store.update_stream("s2", now=3.0, name="stream-1")
    assert (await store.get_stream("s2")) == await store.get_stream_by_name("stream-2")
    # Renaming to its own name is not a clash.
    same = await store.update_stream("s2", now=4.0, name="stream-2")
    assert same is not None and same.name == "stream-2"


async def test_update(store: Store) -> None:
    await make(store, 1)
    updated = await store.update_stream(
        "s1", now=50.0, name="renamed", disabled=True, record=True, key_hash=hash_key("new")
    )
    assert updated is not None
    assert (updated.name, updated.disabled, updated.record) == ("renamed", True, True)
    assert updated.updated_at == 50.0 and updated.created_at == 1.0
    assert await store.get_stream("s1") == updated
    assert await store.find_stream_by_key_hash(hash_key("key-1")) is None
    assert await store.find_stream_by_key_hash(hash_key("new")) == updated
    assert await store.get_stream_by_name("stream-1") is None
    # Fields left as None are unchanged.
    again = await store.update_stream("s1", now=60.0, disabled=False)
    assert again is not None
    assert (again.name, again.disabled, again.record, again.updated_at) == (
        "renamed",
        False,
        True,
        60.0,
    )
    assert await store.update_stream("missing", now=1.0, name="x") is None


async def test_soft_delete(store: Store) -> None:
    await make(store, 1)
    await make(store, 2)
    await store.insert_session(
        SessionRecord(
            id="sess", stream_id="s1", name="stream-1", created_at=5, last_seen=6, updated_at=6
        )
    )
    assert await store.delete_stream("s1", now=100.0) is True
    assert await store.delete_stream("s1", now=101.0) is False
    assert await store.delete_stream("missing", now=101.0) is False
    # Invisible everywhere.
    assert await store.get_stream("s1") is None
    assert await store.get_stream_by_name("stream-1") is None
    assert await store.find_stream_by_key_hash(hash_key("key-1")) is None
    assert await store.update_stream("s1", now=102.0, disabled=True) is None
    streams, total = await store.list_streams()
    assert [s.id for s in streams] == ["s2"] and total == 1
    # Its sessions stay.
    assert (await store.get_session("sess")) is not None
    _, total = await store.list_sessions(stream_id="s1")
    assert total == 1
    # The row keeps a tombstone key that no key hash can equal.
    rows = await store._fetch("SELECT key_hash, deleted_at FROM streams WHERE id = 's1'")
    assert tuple(rows[0]) == ("deleted:s1", 100.0)
    assert await store.find_stream_by_key_hash("deleted:s1") is None


async def test_enabled_streams(store: Store) -> None:
    for n in range(1, 5):
        await make(store, n)
    await store.update_stream("s2", now=10.0, disabled=True)
    await store.delete_stream("s3", now=10.0)
    assert await store.enabled_streams(["s1", "s2", "s3", "s4", "missing"]) == {"s1", "s4"}
    assert await store.enabled_streams(iter(["s4"])) == {"s4"}
    assert await store.enabled_streams([]) == set()
    await store.update_stream("s2", now=11.0, disabled=False)
    assert await store.enabled_streams(["s2"]) == {"s2"}


async def test_name_and_key_reusable_after_delete(store: Store) -> None:
    await make(store, 1)
    await store.delete_stream("s1", now=10.0)
    reborn = await store.create_stream(
        id="s9", name="stream-1", key_hash=hash_key("key-1"), playback_id="p9", now=11.0
    )
    assert await store.get_stream_by_name("stream-1") == reborn
    assert await store.find_stream_by_key_hash(hash_key("key-1")) == reborn
    # A second delete of a same-named stream does not clash with the first tombstone.
    assert await store.delete_stream("s9", now=12.0)
    again = await store.create_stream(
        id="s10", name="stream-1", key_hash=hash_key("k10"), playback_id="p10", now=13.0
    )
    await store.update_stream("s10", now=14.0, name="other")
    await store.update_stream("s10", now=15.0, name="stream-1")
    assert (await store.get_stream_by_name("stream-1")) == await store.get_stream(again.id)


async def test_list_streams_pages(store: Store) -> None:
    for n in (3, 1, 2, 5, 4):
        await make(store, n)
    # Same created_at: ordered by id.
    await store.create_stream(id="s0", name="zero", key_hash="h0", playback_id="p0", now=3.0)
    page, total = await store.list_streams(limit=2)
    assert [s.id for s in page] == ["s1", "s2"] and total == 6
    page, total = await store.list_streams(offset=2, limit=2)
    assert [s.id for s in page] == ["s0", "s3"] and total == 6
    page, total = await store.list_streams(offset=10)
    assert page == [] and total == 6


@pytest.mark.parametrize(
    ("offset", "limit", "message"),
    [(-1, 10, "offset"), (0, 0, "limit"), (0, 1001, "limit")],
)
async def test_bad_paging(store: Store, offset: int, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await store.list_streams(offset=offset, limit=limit)
    with pytest.raises(ValueError, match=message):
        await store.list_sessions(offset=offset, limit=limit)


async def test_closed_store_refuses(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "ingest.db")
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get_stream("s1")
    with pytest.raises(RuntimeError, match="closed"):
        await make(store, 1)
