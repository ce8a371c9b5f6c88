"""Worker processes sharing the RTMP port (``[rtmp] processes = 2``), end to end.

Each test runs the real ``rtmp-ingest serve`` with two workers. Which worker the kernel
hands a connection to is its choice (SO_REUSEPORT hashes the addresses), so the tests
open publishers until both workers hold some, and read from ``/api/status`` which
worker holds what.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.media import make_flv, read_flv_tags
from ingest.config import RtmpConfig
from ingest.listener import RtmpServer
from ingest.rtmp.events import StatusReceived
from sessions.streams import Streams
from storage import Store
from storage.models import StreamRecord
from tests.support.certs import make_certificate, served_fingerprint
from tests.support.media import publish_with_pyav, start_ffmpeg
from tests.support.recorder import AllowAll, Recorder
from tests.support.rtmp_client import SocketPublisher

TOKEN = "test-admin-token-of-the-worker-tests"
#: Publishers a test may open while waiting for both workers to hold one (the chance
#: that the kernel gives all of them to one worker is 2 ** -(MAX_TRIES - 1)).
MAX_TRIES = 40
KEYFRAME = b"\x17\x01\x00\x00\x00" + bytes(200)
AUDIO = b"\xaf\x01" + bytes(100)


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    rtmp_port: int
    http_port: int
    data_dir: Path
    #: With ``[rtmps]`` on.
    rtmps_port: int | None = None

    async def call(self, method: str, path: str) -> Any:
        def run() -> Any:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.http_port}{path}",
                method=method,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        return await asyncio.to_thread(run)

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = await self.call("GET", "/api/status")
        return status

    async def session(self, session_id: str) -> dict[str, Any]:
        session: dict[str, Any] = await self.call("GET", f"/api/sessions/{session_id}")
        return session

    async def live_of(self, stream_id: str) -> dict[str, Any]:
        """The stream's live session, waiting for it to open."""
        async with asyncio.timeout(10):
            while True:
                page = await self.call("GET", f"/api/sessions?stream_id={stream_id}&status=live")
                if page["items"]:
                    live: dict[str, Any] = page["items"][0]
                    return live
                await asyncio.sleep(0.05)

    async def holder(self, stream_id: str) -> int:
        """The index of the worker holding the stream's live session (it is the only
        live session when this is asked)."""
        await self.live_of(stream_id)
        async with asyncio.timeout(10):
            while True:
                holding = [
                    p["index"] for p in (await self.status())["processes"] if p["live_sessions"]
                ]
                if len(holding) == 1:
                    return holding[0]
                await asyncio.sleep(0.05)

    async def wait_ended(self, session_id: str) -> dict[str, Any]:
        async with asyncio.timeout(15):
            while (session := await self.session(session_id))["status"] != "ended":
                await asyncio.sleep(0.05)
        return session


@asynccontextmanager
async def running(
    tmp_path: Path,
    count: int,
    *,
    hls: bool = False,
    policy: str = "replace",
    record: bool = False,
    processes: int = 2,
    extra: str = "",
    reconnect_window: float = 0.0,
) -> AsyncIterator[tuple[Server, list[tuple[StreamRecord, str]]]]:
    """The server with two workers (or ``processes``), and ``count`` streams (and their
    keys); ``extra`` is more of the config file. It logs to ``server.log`` in
    ``tmp_path``. ``reconnect_window`` is 0 (not the server's 10 s) unless a test of the
    window sets it: the others expect a dropped publish's session to end at once."""
    data = tmp_path / "data"
    store = await Store.open(data / "rtmp-ingest.db")
    streams = Streams(store)
    made = [await streams.create(f"cam{i}", record=record) for i in range(count)]
    await store.close()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[rtmp]\nlisten = "127.0.0.1:0"\nprocesses = {processes}\n'
        f'[http]\nlisten = "127.0.0.1:0"\nadmin_token = "{TOKEN}"\n'
        f"[hls]\nenabled = {'true' if hls else 'false'}\n"
        f'[sessions]\nduplicate_publish = "{policy}"\nflush_interval = 0.2\n'
        f"reconnect_window = {reconnect_window}\n"
        f"reject_delay_min = 0.0\nreject_delay_max = 0.05\n"
        f'[storage]\ndata_dir = "{data}"\n{extra}'
    )
    with open(tmp_path / "server.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingest", "serve", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=log, env=os.environ.copy(),
        )  # fmt: skip
    try:
        rtmp_port = http_port = 0
        rtmps_port: int | None = None
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while not http_port:
                line = (await proc.stdout.readline()).decode()
                assert line, (tmp_path / "server.log").read_text()
                if match := re.search(r"RTMPS on [\d.]+:(\d+)", line):
                    rtmps_port = int(match.group(1))
                if match := re.search(r"RTMP on [\d.]+:(\d+); HTTP API on [\d.]+:(\d+)", line):
                    rtmp_port, http_port = int(match.group(1)), int(match.group(2))
        yield Server(proc, rtmp_port, http_port, data, rtmps_port), made
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)


async def _publish(server: Server, key: str, tls: ssl.SSLContext | None = None) -> SocketPublisher:
    """A publisher that has sent a keyframe and some audio (so its session is open);
    over RTMPS with ``tls``."""
    if tls is not None:
        assert server.rtmps_port is not None
        publisher = await SocketPublisher.open(server.rtmps_port, name=key, tls=tls)
    else:
        publisher = await SocketPublisher.open(server.rtmp_port, name=key)
    await publisher.publish()
    for ts in (0, 20, 40):
        publisher.conn.send_video(ts, KEYFRAME)
        publisher.conn.send_audio(ts, AUDIO)
    await publisher.flush()
    return publisher


async def _spread(
    server: Server,
    streams: list[tuple[StreamRecord, str]],
    least: int,
    tls: ssl.SSLContext | None = None,
) -> list[tuple[SocketPublisher, StreamRecord]]:
    """Publish on the streams one by one until at least ``least`` are live and both
    workers hold some."""
    publishers: list[tuple[SocketPublisher, StreamRecord]] = []
    for stream, key in streams:
        publishers.append((await _publish(server, key, tls), stream))
        await server.live_of(stream.id)
        counts = [p["live_sessions"] for p in (await server.status())["processes"]]
        if len(publishers) >= least and all(counts):
            return publishers
    raise AssertionError(f"every publisher went to one worker: {counts}")


async def _unpublish_all(
    server: Server, publishers: list[tuple[SocketPublisher, StreamRecord]]
) -> list[dict[str, Any]]:
    """Unpublish every publisher; their sessions, once each ended exactly."""
    ids = [(await server.live_of(stream.id))["id"] for _, stream in publishers]
    for publisher, _ in publishers:
        publisher.conn.unpublish()
        await publisher.flush()
    sessions = []
    for (publisher, _), session_id in zip(publishers, ids, strict=True):
        session = await server.wait_ended(session_id)
        assert session["end_reason"] == "unpublished"
        assert session["bytes_received"] == publisher.bytes_sent
        publisher.close()
        sessions.append(session)
    return sessions


@pytest.mark.slow
async def test_publishers_spread_over_workers_and_every_session_is_exact(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, MAX_TRIES) as (server, streams):
        status = await server.status()
        assert [p["index"] for p in status["processes"]] == [0, 1]
        pids = {p["pid"] for p in status["processes"]}
        assert len(pids) == 2 and server.proc.pid not in pids
        publishers = await _spread(server, streams, least=6)

        # The API of the main process lists every worker's sessions.
        status = await server.status()
        assert status["live_sessions"] == len(publishers)
        assert sum(p["live_sessions"] for p in status["processes"]) == len(publishers)
        page = await server.call("GET", "/api/sessions?status=live&limit=1000")
        assert {s["stream_id"] for s in page["items"]} == {stream.id for _, stream in publishers}
        for _, stream in publishers:
            assert (await server.call("GET", f"/api/streams/{stream.id}"))["is_active"]

        # Counters reach the API from the workers' flushes.
        first, first_stream = publishers[0]
        for ts in range(60, 1060, 20):
            first.conn.send_video(ts, KEYFRAME)
        await first.flush()
        async with asyncio.timeout(10):
            while (await server.live_of(first_stream.id))["media_duration"] < 1.0:
                await asyncio.sleep(0.05)

        await _unpublish_all(server, publishers)
        assert (await server.status())["live_sessions"] == 0


async def _served_fingerprints(port: int, connections: int) -> set[str]:
    """The certificates ``connections`` new TLS connections to ``port`` are served (the
    kernel spreads them over the workers)."""
    return {await served_fingerprint(port) for _ in range(connections)}


async def _log_lines(server: Server, tmp_path: Path, event: str, count: int) -> list[str]:
    async with asyncio.timeout(15):
        while True:
            lines = [
                line
                for line in (tmp_path / "server.log").read_text().splitlines()
                if f"event={event} " in line
            ]
            if len(lines) >= count:
                return lines
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_rtmps_in_every_worker_and_a_certificate_reload(tmp_path: Path) -> None:
    """Every worker listens on the RTMPS port; SIGHUP makes every worker serve the new
    certificate to new connections while the TLS publishers it holds go on, and a key that
    does not match is refused with the running certificate kept."""
    cert = make_certificate(tmp_path / "tls", "first")
    extra = (
        f'[rtmps]\nlisten = "127.0.0.1:0"\ncert_file = "{cert.cert_file}"\n'
        f'key_file = "{cert.key_file}"\n'
    )
    async with running(tmp_path, MAX_TRIES, extra=extra) as (server, streams):
        assert server.rtmps_port is not None and server.rtmps_port != server.rtmp_port
        publishers = await _spread(server, streams, least=2, tls=cert.client_context())
        assert await _served_fingerprints(server.rtmps_port, 8) == {cert.fingerprint}

        other = make_certificate(tmp_path / "tls2", "second")
        shutil.copy(other.key_file, cert.key_file)  # a key that does not match
        server.proc.send_signal(signal.SIGHUP)
        (rejected,) = await _log_lines(server, tmp_path, "reload_rejected", 1)
        assert "does not belong to the certificate" in rejected
        assert await _served_fingerprints(server.rtmps_port, 8) == {cert.fingerprint}

        shutil.copy(other.cert_file, cert.cert_file)
        server.proc.send_signal(signal.SIGHUP)
        assert len(await _log_lines(server, tmp_path, "rtmps_certificate_loaded", 2)) == 2
        assert await _served_fingerprints(server.rtmps_port, 16) == {other.fingerprint}

        for publisher, _ in publishers:
            publisher.conn.send_video(60, KEYFRAME)
        for session in await _unpublish_all(server, publishers):
            assert session["media_bytes"] == 4 * len(KEYFRAME) + 3 * len(AUDIO)


@pytest.mark.slow
async def test_sessions_are_forwarded_from_the_worker_that_holds_them(tmp_path: Path) -> None:
    """With worker processes, the worker that holds a publish forwards it to the stream's
    targets (here a listener of the test's), and the session's ledger, read through the
    main process's API, says what each target got."""
    target, recorder = await _listener()
    try:
        async with running(tmp_path, 1) as (server, [(stream, key)]):
            store = await Store.open(server.data_dir / "rtmp-ingest.db")
            try:
                await store.create_target(
                    id="t1", stream_id=stream.id, name="backup", disabled=False, now=1.0,
                    url=f"rtmp://127.0.0.1:{target.port}/live/forwarded",
                )  # fmt: skip
            finally:
                await store.close()
            clip = make_flv(tmp_path / "clip.flv", seconds=2, size=(160, 120))
            url = f"rtmp://127.0.0.1:{server.rtmp_port}/live/{key}"
            assert await (await start_ffmpeg(clip, url)).wait() == 0
            async with asyncio.timeout(30):
                while (
                    not (page := await server.call("GET", f"/api/sessions?stream_id={stream.id}"))[
                        "items"
                    ]
                    or page["items"][0]["status"] != "ended"
                ):
                    await asyncio.sleep(0.1)
            session = page["items"][0]
            (sink,) = await recorder.wait_ended()
        sent = [(t.tag_type, t.body) for t in read_flv_tags(clip) if t.tag_type in (8, 9)]
        assert [(e.message_type, e.payload) for e in sink.media_events] == sent
        (entry,) = session["multistream"]
        assert (entry["target_id"], entry["name"], entry["status"]) == ("t1", "backup", "ended")
        assert entry["skipped_bytes"] == 0 and entry["bytes_sent"] > session["media_bytes"]
    finally:
        await target.close()


async def _listener() -> tuple[RtmpServer, Recorder]:
    """An RTMP listener of the test's own that records what it gets."""
    recorder = Recorder()
    server = RtmpServer(RtmpConfig(listen="127.0.0.1:0"), AllowAll(), recorder)
    await server.start()
    return server, recorder


@pytest.mark.slow
async def test_one_publisher_per_stream_across_workers(tmp_path: Path) -> None:
    """A new publisher on a live key replaces the old one in whichever worker it is."""
    async with running(tmp_path, 1) as (server, [(stream, key)]):
        old = await _publish(server, key)
        old_session = await server.live_of(stream.id)
        holder = await server.holder(stream.id)
        replaced = []
        for _ in range(MAX_TRIES):
            new = await _publish(server, key)
            await old.wait_closed()
            session = await server.wait_ended(old_session["id"])
            assert session["end_reason"] == "replaced"
            replaced.append(session["id"])
            old, old_session = new, await server.live_of(stream.id)
            assert old_session["id"] not in replaced
            now = await server.holder(stream.id)
            if now != holder:
                break
            holder = now
        else:
            raise AssertionError("every publisher went to one worker")
        assert (await server.status())["live_sessions"] == 1
        old.close()


@pytest.mark.slow
async def test_reject_policy_holds_across_workers(tmp_path: Path) -> None:
    async with running(tmp_path, 1, policy="reject") as (server, [(stream, key)]):
        first = await _publish(server, key)
        session = await server.live_of(stream.id)
        # Several tries, so that some reach the worker that does not hold the stream.
        for _ in range(8):
            newcomer = await SocketPublisher.open(server.rtmp_port, name=key)
            refusal = await newcomer.wait_for(StatusReceived)
            assert refusal.code == "NetStream.Publish.BadName"
            newcomer.close()
        assert (await server.live_of(stream.id))["id"] == session["id"]
        first.conn.unpublish()
        await first.flush()
        await server.wait_ended(session["id"])
        # Once the stream is free, a publisher on either worker may take it.
        second = await _publish(server, key)
        assert (await server.live_of(stream.id))["id"] != session["id"]
        second.close()
        first.close()


@pytest.mark.slow
async def test_kick_and_disable_reach_the_worker_that_holds_the_session(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, MAX_TRIES) as (server, streams):
        publishers = await _spread(server, streams, least=2)
        for publisher, stream in publishers[:-1]:
            session = await server.live_of(stream.id)
            answer = await server.call("POST", f"/api/sessions/{session['id']}/kick")
            assert answer == {"kicked": True, "session_id": session["id"]}
            # The end is stored by the time the kick is answered.
            ended = await server.session(session["id"])
            assert (ended["status"], ended["end_reason"]) == ("ended", "kicked")
            await publisher.wait_closed()
        publisher, stream = publishers[-1]
        session = await server.live_of(stream.id)
        await server.call("POST", f"/api/streams/{stream.id}/disable")
        ended = await server.session(session["id"])
        assert (ended["status"], ended["end_reason"]) == ("ended", "key_disabled")
        await publisher.wait_closed()
        assert (await server.status())["live_sessions"] == 0


@pytest.mark.slow
async def test_a_dead_worker_is_replaced_and_only_its_sessions_end(tmp_path: Path) -> None:
    """kill -9 of one worker: its sessions end as server_restart with their playlists
    closed and their recordings made, the other worker's publishers go on, a new worker
    takes the dead one's place, and a graceful stop then ends the rest as shutdown.
    (Recorded streams, so that the media stays to be checked.)"""
    async with running(tmp_path, MAX_TRIES, hls=True, record=True) as (server, streams):
        clip = make_flv(tmp_path / "clip.flv", seconds=30)
        publishers = []
        holders: dict[int, list[str]] = {0: [], 1: []}
        before = {0: 0, 1: 0}
        for stream, key in streams:
            url = f"rtmp://127.0.0.1:{server.rtmp_port}/live/{key}"
            publishers.append(await start_ffmpeg(clip, url, realtime=True, quiet=True))
            session = await server.live_of(stream.id)
            after = await _counts(server, len(publishers))
            (holder,) = [index for index in after if after[index] > before[index]]
            holders[holder].append(session["id"])
            before = after
            if all(holders.values()):
                break
        else:
            raise AssertionError("every publisher went to one worker")
        await asyncio.sleep(2.5)  # a segment or so each
        status = await server.status()
        victim = status["processes"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        for session_id in holders[0]:
            session = await server.wait_ended(session_id)
            assert session["end_reason"] == "server_restart"
        async with asyncio.timeout(30):  # the main process makes their recordings
            for session_id in holders[0]:
                while (await server.session(session_id))["recording_status"] != "ready":
                    await asyncio.sleep(0.1)
        for session_id in holders[1]:
            assert (await server.session(session_id))["status"] == "live"
        async with asyncio.timeout(20):
            while (await server.status())["processes"][0]["pid"] in (None, victim["pid"]):
                await asyncio.sleep(0.1)
        # The server still takes publishers (PyAV's FFmpeg this time).
        late_stream, late_key = streams[len(publishers)]
        url = f"rtmp://127.0.0.1:{server.rtmp_port}/live/{late_key}"
        assert await publish_with_pyav(make_flv(tmp_path / "short.flv", seconds=1), url) == 0
        # Its end reaches the main process from the worker (the last read may come up to
        # one read interval after the publisher left).
        async with asyncio.timeout(20):
            while True:
                query = f"/api/sessions?stream_id={late_stream.id}"
                late = (await server.call("GET", query))["items"]
                if late and late[0]["status"] != "live":
                    break
                await asyncio.sleep(0.1)
        assert [s["end_reason"] for s in late] == ["unpublished"]

        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.proc.wait(), 30) == 0
        for publisher in publishers:
            await asyncio.wait_for(publisher.wait(), 20)
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    try:
        assert await store.integrity_check() == "ok"
        for session_id in holders[0] + holders[1]:
            session = await store.get_session(session_id)
            assert session is not None
            expected = "server_restart" if session_id in holders[0] else "shutdown"
            assert (session.status, session.end_reason) == ("ended", expected)
            stream = await store.get_stream(session.stream_id)
            assert stream is not None
            playlist = server.data_dir / "media" / stream.playback_id / session_id / "index.m3u8"
            # Both ways of ending close the live playlist and make the recording.
            assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")
            assert session.recording_status == "ready"
            assert session.source_segments >= 1 or expected == "server_restart"
    finally:
        await store.close()


async def _counts(server: Server, total: int) -> dict[int, int]:
    """Live sessions per worker, once they add up to ``total``."""
    async with asyncio.timeout(10):
        while True:
            status = await server.status()
            counts = {p["index"]: p["live_sessions"] for p in status["processes"]}
            if sum(counts.values()) == total:
                return counts
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("processes", ["0", "257"])
async def test_processes_must_be_between_1_and_256(tmp_path: Path, processes: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "check-config",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RTMP_INGEST_RTMP_PROCESSES": processes},
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"rtmp.processes" in err


@pytest.mark.slow
async def test_workers_stop_gracefully_when_the_main_process_dies(tmp_path: Path) -> None:
    async with running(tmp_path, 1) as (server, [(stream, key)]):
        publisher = await _publish(server, key)
        session = await server.live_of(stream.id)
        pids = [p["pid"] for p in (await server.status())["processes"]]
        server.proc.kill()
        await server.proc.wait()
        # Each worker notices the closed channel and ends what it holds.
        await publisher.wait_closed()
        async with asyncio.timeout(20):
            while any(_alive(pid) for pid in pids):
                await asyncio.sleep(0.05)
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    try:
        record = await store.get_session(session["id"])
        assert record is not None
        assert (record.status, record.end_reason) == ("ended", "shutdown")
        assert record.bytes_received == publisher.bytes_sent
    finally:
        await store.close()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
async def test_a_worker_that_cannot_listen_stops_the_server_with_a_clear_error(
    tmp_path: Path,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(
            f'[rtmp]\nlisten = "127.0.0.1:{port}"\nprocesses = 2\n'
            f'[http]\nlisten = "127.0.0.1:0"\n[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingest", "serve", "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in err.decode(), err.decode()
    finally:
        taken.close()
