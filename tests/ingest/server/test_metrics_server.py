"""``GET /metrics`` of the real server, read with ``prometheus_client``'s parser: its
counters agree with the ledger after real publishes, with one process and with two
worker processes (the main process adds up the workers'), and the token guards it
unless ``[http] metrics_public`` is on."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.media import make_flv
from ingest.rtmp.events import StatusReceived
from tests.ingest.server.test_workers import (
    TOKEN,
    Server,
    _spread,
    _unpublish_all,
    running,
)
from tests.support.media import publish_with_ffmpeg
from tests.support.rtmp_client import SocketPublisher

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(server: Server, token: str | None = TOKEN) -> Samples:
    def run() -> str:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.http_port}/metrics", headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read()).decode()

    text = await asyncio.to_thread(run)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _until(server: Server, check: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``check`` holds (the workers report every flush)."""
    async with asyncio.timeout(15):
        while True:
            samples = await _scrape(server)
            if check(samples):
                return samples
            await asyncio.sleep(0.1)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def _refused(server: Server) -> None:
    publisher = await SocketPublisher.open(server.rtmp_port, name="not-a-key")
    status = await publisher.wait_for(StatusReceived)
    assert status.level == "error"
    publisher.close()


async def test_one_process_counts_agree_with_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTMP_INGEST_HTTP_METRICS_PUBLIC", "true")
    clip = make_flv(tmp_path / "clip.flv", seconds=6, gop=30)
    async with running(tmp_path, 1, hls=True, processes=1) as (server, streams):
        ((stream, key),) = streams
        await _refused(server)
        url = f"rtmp://127.0.0.1:{server.rtmp_port}/live/{key}"
        assert await publish_with_ffmpeg(clip, url) == 0
        async with asyncio.timeout(15):
            while not (page := await server.call("GET", f"/api/sessions?stream_id={stream.id}"))[
                "items"
            ]:
                await asyncio.sleep(0.05)
        (listed,) = page["items"]
        session = await server.wait_ended(listed["id"])
        assert session["source_segments"] >= 2
        samples = await _until(server, lambda s: _value(s, "rtmp_ingest_connections") == 0)
        # Public: no token needed.
        assert await _scrape(server, token=None) != {}
    assert _value(samples, "rtmp_ingest_publishes_total", result="accepted", reason="") == 1
    rejected = _value(
        samples, "rtmp_ingest_publishes_total", result="rejected", reason="unknown_key"
    )
    assert rejected == 1
    assert _value(samples, "rtmp_ingest_received_bytes_total") == session["bytes_received"]
    assert (
        _value(samples, "rtmp_ingest_stream_received_bytes_total", stream=stream.name)
        == session["bytes_received"]
    )
    assert _value(samples, "rtmp_ingest_segments_written_total") == session["source_segments"]
    listed_segments = _value(samples, "rtmp_ingest_segment_availability_seconds_count")
    assert 1 <= listed_segments <= session["source_segments"]
    assert _value(samples, "rtmp_ingest_live_sessions") == 0
    assert _value(samples, "rtmp_ingest_store_write_seconds_count") > 0
    assert _value(samples, "rtmp_ingest_event_loop_lag_seconds_count") > 0


async def test_two_workers_are_summed_and_the_token_guards(tmp_path: Path) -> None:
    async with running(tmp_path, 40) as (server, streams):
        with pytest.raises(urllib.error.HTTPError) as refused:
            await _scrape(server, token=None)
        assert refused.value.code == 401
        publishers = await _spread(server, streams, least=2)
        count = len(publishers)
        await _until(
            server,
            lambda s: (
                _value(s, "rtmp_ingest_live_sessions") == count
                and _value(s, "rtmp_ingest_connections") >= count
            ),
        )
        await _refused(server)
        sessions = await _unpublish_all(server, publishers)
        received = sum(s["bytes_received"] for s in sessions)
        samples = await _until(
            server,
            lambda s: (
                _value(s, "rtmp_ingest_live_sessions") == 0
                and _value(s, "rtmp_ingest_received_bytes_total") == received
                and _value(
                    s, "rtmp_ingest_publishes_total", result="rejected", reason="unknown_key"
                )
                == 1
            ),
        )
        by_name = {s["stream_id"]: s for s in sessions}
    assert _value(samples, "rtmp_ingest_publishes_total", result="accepted", reason="") == count
    for _, stream in publishers:
        assert (
            _value(samples, "rtmp_ingest_stream_received_bytes_total", stream=stream.name)
            == by_name[stream.id]["bytes_received"]
        )
