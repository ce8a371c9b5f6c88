"""The forwarding engine against real RTMP servers: nginx-rtmp (``record all``) and a second
rtmp-ingest listener as targets, fed by a real ffmpeg publish into our own listener."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.media import FlvTag, make_flv, read_flv_tags
from ingest.config import RtmpsConfig
from ingest.hooks import Decision, PublishAttempt
from ingest.multistream import FAILED_AFTER, ForwardSettings, Target
from ingest.rtmp.url import parse_rtmp_url
from ingest.server.looplag import LoopLagMonitor
from tests.support.certs import make_certificate
from tests.support.forwarding import Forwarding
from tests.support.listener import Start, listeners
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.nginx import NginxRtmp
from tests.support.recorder import Recorder

start = pytest.fixture(listeners)

FAST = ForwardSettings(retry_min=0.2, retry_max=1.0, connect_timeout=5.0, stall_timeout=2.0)


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[NginxRtmp]:
    server = NginxRtmp(tmp_path / "nginx")
    await server.start()
    yield server
    server.kill()
    await server.stop()


def _target(target_id: str, url: str) -> Target:
    return Target(target_id, target_id, parse_rtmp_url(url))


def _tags(recorder: Recorder, index: int = 0) -> list[tuple[int, int, bytes]]:
    return [
        (e.message_type, e.timestamp, e.payload) for e in recorder.publishes[index].media_events
    ]


def _nginx_tags(path: Path) -> list[FlvTag]:
    """The audio/video tags nginx recorded, less the copy of the AAC sequence header its
    record module writes itself before the first audio tag (it holds the stream's codec
    headers, and the tag that carried it is recorded too)."""
    tags: list[FlvTag] = []
    for tag in read_flv_tags(path):
        if tag.tag_type not in (8, 9):
            continue
        if tags and tag == tags[-1] and tag.tag_type == 8 and tag.body[1:2] == b"\x00":
            continue
        tags.append(tag)
    return tags


@pytest.mark.slow
async def test_every_tag_reaches_nginx_and_another_rtmp_ingest(
    tmp_path: Path, start: Start, nginx: NginxRtmp
) -> None:
    ours, received = await start()
    targets = [
        _target("nginx", f"{nginx.url}/forwarded"),
        _target("ours", f"rtmp://127.0.0.1:{ours.port}/live/forwarded"),
    ]
    forwarding = Forwarding(targets, FAST)
    source, _ = await start(handler=forwarding)
    clip = make_flv(tmp_path / "clip.flv", seconds=4, size=(320, 240))
    assert await publish_with_ffmpeg(clip, f"rtmp://127.0.0.1:{source.port}/live/src") == 0
    async with asyncio.timeout(30):
        await forwarding.closed.wait()
    sent = _tags(forwarding)
    assert len(sent) > 200

    # The other rtmp-ingest got every tag, byte for byte, with the same timestamps.
    await received.wait_ended()
    assert _tags(received) == sent
    assert received.publishes[0].metadata_events[0].values == (
        forwarding.publishes[0].metadata_events[0].values
    )
    # nginx recorded every tag.
    await nginx.stop()
    recorded = _nginx_tags(nginx.record("forwarded"))
    assert [(t.tag_type, t.body) for t in recorded] == [(kind, body) for kind, _, body in sent]
    first = sent[0][1]
    assert [t.timestamp for t in recorded] == [ts - first for _, ts, _ in sent]

    (final,) = forwarding.final
    media = sum(len(body) for _, _, body in sent)
    for stats in final:
        assert stats.status == "ended"
        assert (stats.media_bytes, stats.skipped_bytes, stats.reconnects) == (media, 0, 0)
        assert stats.bytes_sent > media and stats.last_error is None
    assert forwarding.observer.kinds("nginx") == ["connected", "disconnected"]


async def _live(forwarding: Forwarding, target_id: str, count: int = 1) -> None:
    async with asyncio.timeout(20):
        while forwarding.observer.kinds(target_id).count("connected") < count:
            await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_a_target_killed_and_restarted_is_reconnected_and_counted(
    tmp_path: Path, start: Start, nginx: NginxRtmp
) -> None:
    forwarding = Forwarding([_target("nginx", f"{nginx.url}/again")], FAST)
    source, _ = await start(handler=forwarding)
    clip = make_flv(tmp_path / "clip.flv", seconds=6, size=(320, 240), gop=15)
    url = f"rtmp://127.0.0.1:{source.port}/live/src"
    publisher = await start_ffmpeg(clip, url, realtime=True)
    await _live(forwarding, "nginx")
    await asyncio.sleep(1.0)
    nginx.kill()
    await nginx.stop()  # reaped
    async with asyncio.timeout(10):
        while "disconnected" not in forwarding.observer.kinds("nginx"):
            await asyncio.sleep(0.02)
    (down,) = [e for e in forwarding.observer.events if e.kind == "disconnected"]
    assert down.stats.status == "retrying" and down.reason
    await asyncio.sleep(0.5)
    await nginx.start()
    await _live(forwarding, "nginx", 2)
    assert await publisher.wait() == 0
    async with asyncio.timeout(30):
        await forwarding.closed.wait()
    ((stats,),) = forwarding.final
    assert stats.reconnects == 1
    assert stats.skipped_bytes > 0
    assert 0 < stats.connected_seconds < 6
    kinds = forwarding.observer.kinds("nginx")
    assert kinds[:2] == ["connected", "disconnected"]
    assert kinds[-2:] == ["connected", "disconnected"]
    assert set(kinds[2:-2]) <= {"error"}  # attempts while it was down

    # What nginx recorded after the restart: the headers, then the source from a keyframe.
    await nginx.settled("again")
    await nginx.stop()
    sent = _tags(forwarding)
    recorded = _nginx_tags(nginx.record("again"))
    configs = [(k, body) for k, _, body in sent if body[1:2] == b"\x00"][:2]
    assert [(t.tag_type, t.body) for t in recorded[:2]] == configs
    rest = [(t.tag_type, t.body) for t in recorded[2:]]
    assert rest[0][0] == 9 and rest[0][1][0] >> 4 == 1  # a keyframe
    tail = [(kind, body) for kind, _, body in sent]
    at = tail.index(rest[0])
    assert rest == tail[at:]


@pytest.mark.slow
async def test_targets_that_stop_reading_leave_the_others_and_the_feeder_alone(
    tmp_path: Path, start: Start, nginx: NginxRtmp
) -> None:
    """Two targets that take no bytes: nginx, stopped (SIGSTOP) once live, holds its TCP
    connection and reads nothing (our backlog for it fills and media is skipped, counted);
    a socket that accepts TCP but never reads (it never answers the handshake: every
    attempt times out). The third target gets every tag; the event loop's lag meanwhile
    is measured and printed."""
    ours, received = await start()
    settings = ForwardSettings(
        max_buffer=512 * 1024,
        connect_timeout=1.0,
        retry_min=0.2,
        retry_max=0.5,
        stall_timeout=60,
        drain_timeout=0.5,
    )
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)  # the kernel accepts; nobody reads
        targets = [
            _target("stalled", f"{nginx.url}/stalled"),
            _target("hole", f"rtmp://127.0.0.1:{hole.getsockname()[1]}/live/never"),
            _target("ours", f"rtmp://127.0.0.1:{ours.port}/live/fine"),
        ]
        forwarding = Forwarding(targets, settings)
        source, _ = await start(handler=forwarding)
        clip = make_flv(tmp_path / "clip.flv", seconds=8, size=(640, 360), bitrate=3_000_000)
        media = sum(len(t.body) for t in read_flv_tags(clip) if t.tag_type in (8, 9))
        lag = LoopLagMonitor()
        lag.start()
        publisher = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-readrate", "4",
            "-i", str(clip), "-c", "copy", "-f", "flv",
            f"rtmp://127.0.0.1:{source.port}/live/src",
        )  # fmt: skip
        await _live(forwarding, "stalled")
        nginx.pause()
        assert await publisher.wait() == 0
        async with asyncio.timeout(30):
            await forwarding.closed.wait()
        snapshot = lag.snapshot()
        lag.stop()
    print(f"\nloop lag (ms) with two targets taking nothing: {snapshot}")
    assert _tags(received) == _tags(forwarding)
    stalled, dead, fine = forwarding.final[0]
    assert (fine.skipped_bytes, fine.media_bytes, fine.reconnects) == (0, media, 0)
    assert stalled.skipped_bytes > 0 and stalled.reconnects == 0
    assert stalled.media_bytes + stalled.skipped_bytes == media
    # Sequence headers are not counted as skipped (a target gets them when it starts).
    headers = sum(len(body) for _, _, body in _tags(forwarding) if body[1:2] == b"\x00")
    assert (dead.skipped_bytes, dead.media_bytes, dead.connected_seconds) == (
        media - headers,
        0,
        0,
    )
    assert dead.last_error is not None and dead.last_error.startswith("timed out")
    assert set(forwarding.observer.kinds("hole")) == {"error"}


class _RefuseNamingTheKey:
    """Refuses every publish with a description that repeats the key (some servers do)."""

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        return Decision(False, "NetStream.Publish.BadName", f"no stream {attempt.key} here")


@pytest.mark.slow
async def test_a_refusing_target_is_retried_failed_and_its_key_never_shown(
    tmp_path: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    refusing, _ = await start(authorizer=_RefuseNamingTheKey())
    secret = "sk-live-0123456789abcdef"
    url = f"rtmp://127.0.0.1:{refusing.port}/live/{secret}?token=hidden"
    settings = ForwardSettings(retry_min=0.05, retry_max=0.1)
    forwarding = Forwarding([_target("refusing", url)], settings)
    source, _ = await start(handler=forwarding)
    clip = make_flv(tmp_path / "clip.flv", seconds=2, size=(160, 120))
    publisher = await start_ffmpeg(clip, f"rtmp://127.0.0.1:{source.port}/live/src", realtime=True)
    assert await publisher.wait() == 0
    async with asyncio.timeout(30):
        await forwarding.closed.wait()
    events = [e for e in forwarding.observer.events if e.target.id == "refusing"]
    assert len(events) >= FAILED_AFTER
    assert {e.kind for e in events} == {"error"}
    statuses = [e.stats.status for e in events]
    assert statuses[:FAILED_AFTER] == ["retrying"] * (FAILED_AFTER - 1) + ["failed"]
    assert events[0].reason == "refused: NetStream.Publish.BadName no stream **** here"
    ((stats,),) = forwarding.final
    assert stats.status == "ended" and stats.last_error == events[-1].reason
    # Every log line, fields included, but the refusing server's own (a third party's).
    lines = [
        f"{r.getMessage()} {r.__dict__.get('fields')} {r.exc_text}"
        for r in caplog.records
        if r.msg != "publish_rejected"
    ]
    shown = [repr(e) for e in events] + [repr(stats), *lines]
    assert not [text for text in shown if secret in text or "hidden" in text]


@pytest.mark.slow
async def test_rtmps_targets_are_verified(tmp_path: Path, start: Start) -> None:
    cert = make_certificate(tmp_path / "tls")
    rtmps = RtmpsConfig(
        listen="127.0.0.1:0", cert_file=str(cert.cert_file), key_file=str(cert.key_file)
    )
    over_tls, received = await start(rtmps=rtmps)
    port = over_tls.tls_port
    targets = [
        _target("trusted", f"rtmps://127.0.0.1:{port}/live/k1"),
        _target("by-name", f"rtmps://localhost:{port}/live/k2"),
    ]
    forwarding = Forwarding(targets, ForwardSettings(ca_file=str(cert.cert_file)))
    untrusted = Forwarding(
        [_target("untrusted", f"rtmps://127.0.0.1:{port}/live/k3")],
        ForwardSettings(retry_min=0.1, retry_max=0.2),
    )
    source, _ = await start(handler=forwarding)
    other, _ = await start(handler=untrusted)
    clip = make_flv(tmp_path / "clip.flv", seconds=2, size=(160, 120))
    assert await publish_with_ffmpeg(clip, f"rtmp://127.0.0.1:{source.port}/live/a") == 0
    assert await publish_with_ffmpeg(clip, f"rtmp://127.0.0.1:{other.port}/live/b") == 0
    async with asyncio.timeout(30):
        await forwarding.closed.wait()
        await untrusted.closed.wait()
    await received.wait_ended(2)
    sent = _tags(forwarding)
    assert _tags(received, 0) == sent and _tags(received, 1) == sent
    assert len(received.publishes) == 2
    ((refused,),) = untrusted.final
    assert refused.last_error is not None
    assert refused.last_error.startswith("TLS certificate refused")


@pytest.mark.slow
async def test_targets_added_and_removed_while_live(tmp_path: Path, start: Start) -> None:
    """A target added mid-session gets the headers, then the source from a keyframe; one
    removed mid-session ends there with its counters."""
    ours, received = await start()
    late = _target("late", f"rtmp://127.0.0.1:{ours.port}/live/late")
    early = _target("early", f"rtmp://127.0.0.1:{ours.port}/live/early")
    forwarding = Forwarding([early], FAST)
    source, _ = await start(handler=forwarding)
    clip = make_flv(tmp_path / "clip.flv", seconds=4, size=(160, 120), gop=15)
    url = f"rtmp://127.0.0.1:{source.port}/live/src"
    publisher = await start_ffmpeg(clip, url, realtime=True)
    await _live(forwarding, "early")
    (multistream,) = forwarding.multistreams
    await asyncio.sleep(1.0)
    multistream.add(late)
    await _live(forwarding, "late")
    removed = await multistream.remove("early")
    assert removed is not None and removed.status == "ended" and removed.skipped_bytes == 0
    assert await publisher.wait() == 0
    async with asyncio.timeout(30):
        await forwarding.closed.wait()
    await received.wait_ended(2)
    sent = _tags(forwarding)
    by_key = {sink.attempt.key: sink for sink in received.publishes}
    early_got = [(e.message_type, e.timestamp, e.payload) for e in by_key["early"].media_events]
    late_got = [(e.message_type, e.timestamp, e.payload) for e in by_key["late"].media_events]
    assert early_got == sent[: len(early_got)]
    configs = [tag for tag in sent if tag[2][1:2] == b"\x00"]
    assert late_got[:2] == configs
    assert late_got[2][0] == 9 and late_got[2][2][0] >> 4 == 1  # a keyframe
    at = sent.index(late_got[2])
    assert late_got[2:] == sent[at:]
    ((final,),) = forwarding.final
    assert final.target_id == "late" and final.skipped_bytes > 0
