"""Crash safety (a real SIGKILL mid-flush) and concurrent use of one store."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from storage import EndReason, SessionRecord, Store

REPO_ROOT = Path(__file__).resolve().parents[2]

# The child flushes one live session plus 200 others in a tight loop and prints each
# last_seen after its transaction committed.
CHILD = r"""
import asyncio, sys
from storage import SessionRecord, Store

async def main(path):
    store = await Store.open(path)
    await store.create_stream(id="s1", name="n", key_hash="h", playback_id="p", now=0.0)
    others = [
        SessionRecord(id=f"o{i:03d}", stream_id="s1", name="n", created_at=float(i),
                      last_seen=float(i), updated_at=float(i), status="ended", ended_at=float(i))
        for i in range(200)
    ]
    live = SessionRecord(id="live", stream_id="s1", name="n", created_at=1000.0,
                         last_seen=1000.0, updated_at=1000.0)
    for s in [*others, live]:
        await store.insert_session(s)
    n = 0
    while True:
        n += 1
        live.last_seen = live.updated_at = 1000.0 + n * 0.25
        live.bytes_received = n * 1000
        live.tracks = [{"kind": "video", "frames": n}]
        for s in others:
            s.bytes_received = n
        await store.save_sessions([*others, live])
        sys.stdout.write(repr(live.last_seen) + "\n")
        sys.stdout.flush()

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
async def test_sigkill_mid_flush_then_recover(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ingest.db"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), stdout=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    try:
        confirmed: list[float] = []
        async with asyncio.timeout(15):
            while len(confirmed) < 40:
                line = await proc.stdout.readline()
                assert line, "the child exited early"
                confirmed.append(float(line))
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    confirmed += [float(x) for x in (await proc.stdout.read()).split()]
    last_confirmed = confirmed[-1]

    async with await Store.open(path) as store:
        assert await store.integrity_check() == "ok"
        saved = await store.get_session("live")
        assert saved is not None and saved.status == "live"
        # Everything the child saw committed is there; at most one more flush landed
        # between its last commit and its last line.
        assert last_confirmed <= saved.last_seen <= last_confirmed + 0.25
        # The flush is all or nothing: the session's counters and the stream's last_seen
        # come from the same transaction.
        n = round((saved.last_seen - 1000.0) / 0.25)
        assert saved.bytes_received == n * 1000
        assert saved.tracks == [{"kind": "video", "frames": n}]
        other = await store.get_session("o199")
        assert other is not None and other.bytes_received == n
        stream = await store.get_stream("s1")
        assert stream is not None and stream.last_seen == saved.last_seen

        closed = await store.close_open_sessions(reason=EndReason.SERVER_RESTART, now=5000.0)
        assert [s.id for s in closed] == ["live"]
        assert closed[0].ended_at == saved.last_seen
        assert closed[0].duration == saved.last_seen - 1000.0
        assert closed[0].end_reason == "server_restart"
        assert closed[0].updated_at == 5000.0
        assert await store.integrity_check() == "ok"


async def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "ingest.db") as store:
        await store.create_stream(id="s1", name="n", key_hash="h", playback_id="p", now=0.0)
        sessions = [
            SessionRecord(
                id=f"x{i}",
                stream_id="s1",
                name="n",
                created_at=float(i),
                last_seen=float(i),
                updated_at=float(i),
            )
            for i in range(50)
        ]
        await asyncio.gather(*(store.insert_session(s) for s in sessions))

        async def flush(round_: int) -> None:
            await store.save_sessions([replace(s, bytes_received=round_) for s in sessions])

        async def read() -> int:
            page, total = await store.list_sessions(limit=1000)
            # A page and its total come from one snapshot, and a flush is never half seen.
            assert len(page) == total
            assert len({s.bytes_received for s in page}) == 1
            return total

        results = await asyncio.gather(
            *(flush(r) for r in range(1, 21)),
            *(read() for _ in range(20)),
            *(
                store.create_stream(
                    id=f"t{i}", name=f"t{i}", key_hash=f"th{i}", playback_id=f"tp{i}", now=1.0
                )
                for i in range(20)
            ),
        )
        assert all(r == 50 for r in results[20:40])
        assert (await store.list_streams())[1] == 21
        page, _ = await store.list_sessions(limit=1000)
        assert {s.bytes_received for s in page} == {20}


async def test_cancelled_write_leaves_store_usable(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "ingest.db") as store:
        await store.create_stream(id="s1", name="n", key_hash="h", playback_id="p", now=0.0)
        for delay_rounds in range(6):
            task = asyncio.create_task(
                store.create_stream(
                    id=f"c{delay_rounds}",
                    name=f"c{delay_rounds}",
                    key_hash=f"ch{delay_rounds}",
                    playback_id=f"cp{delay_rounds}",
                    now=1.0,
                )
            )
            for _ in range(delay_rounds):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # The next transaction starts cleanly whatever point the cancel hit.
            await store.update_stream("s1", now=float(delay_rounds), name=f"n{delay_rounds}")
        stream = await store.get_stream("s1")
        assert stream is not None and (stream.name, stream.updated_at) == ("n5", 5.0)
        assert await store.integrity_check() == "ok"
