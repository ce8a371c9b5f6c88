"""Real RTMP clients publish to the listener; what arrives must be what was sent.

The clip is encoded to an FLV file first; PyAV (bundled FFmpeg 8) or the ``ffmpeg``
command line then pushes it with stream copy, so every audio/video tag body of the file
must arrive as one media message with the same type, timestamp and bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from ingest.config import RtmpConfig
from ingest.listener import RtmpServer
from tests.support.media import make_flv, publish_with_ffmpeg, publish_with_pyav, read_flv_tags
from tests.support.recorder import AllowAll, Recorder


@pytest.fixture
async def rtmp() -> AsyncIterator[tuple[RtmpServer, Recorder]]:
    recorder = Recorder()
    server = RtmpServer(RtmpConfig(listen="127.0.0.1:0"), AllowAll(), recorder)
    await server.start()
    yield server, recorder
    await server.close()


def _is_video_metadata(type_id: int, body: bytes) -> bool:
    """An Enhanced RTMP video Metadata packet (colorInfo), which the FLV muxer writes from
    the codec parameters of the moment rather than copying it."""
    return type_id == 9 and bool(body) and body[0] & 0x80 != 0 and body[0] & 0x0F == 4


def _media(items: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    return [i for i in items if i[0] in (8, 9) and not _is_video_metadata(i[0], i[2])]


def _expected(source: Path) -> list[tuple[int, int, bytes]]:
    return _media([(t.tag_type, t.timestamp, t.body) for t in read_flv_tags(source)])


def _source_counts(source: Path) -> tuple[int, int, int]:
    """Video packets, video keyframes and audio packets as PyAV's demuxer sees the file."""
    video = keys = audio = 0
    with av.open(str(source)) as container:
        for packet in container.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                video += 1
                keys += bool(packet.is_keyframe)
            else:
                audio += 1
    return video, keys, audio


def _received_counts(events: list[tuple[int, int, bytes]]) -> tuple[int, int, int]:
    from ingest.flv import parse_audio, parse_video

    video = keys = audio = 0
    for type_id, ts, payload in events:
        if type_id == 9:
            for packet in parse_video(payload, ts):
                if packet.kind == "frame":
                    video += 1
                    keys += packet.is_keyframe
        else:
            audio += sum(p.kind == "frame" for p in parse_audio(payload, ts))
    return video, keys, audio


CLIPS = {
    "h264_aac": {"video": "libx264", "audio": "aac"},
    "hevc_aac": {"video": "libx265", "audio": "aac"},
    "h264_only": {"video": "libx264", "audio": None},
    "aac_only": {"video": None, "audio": "aac"},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("publisher", "clip"),
    [
        ("pyav", "h264_aac"),
        ("pyav", "hevc_aac"),
        ("ffmpeg", "h264_aac"),
        ("ffmpeg", "h264_only"),
        ("ffmpeg", "aac_only"),
    ],
)
async def test_published_media_arrives_exactly(
    rtmp: tuple[RtmpServer, Recorder], tmp_path: Path, publisher: str, clip: str
) -> None:
    server, recorder = rtmp
    source = make_flv(tmp_path / f"{clip}.flv", **CLIPS[clip])  # type: ignore[arg-type]
    url = f"rtmp://127.0.0.1:{server.port}/live/test-stream?token=abc"
    if publisher == "pyav":
        assert await publish_with_pyav(source, url) == 0
    else:
        assert await publish_with_ffmpeg(source, url) == 0

    (sink,) = await recorder.wait_ended()
    assert sink.attempt.app == "live"
    assert sink.attempt.key == "test-stream"
    assert sink.attempt.query == "token=abc"
    assert sink.end is not None
    assert sink.end[0] == "unpublished"

    received = _media([(e.message_type, e.timestamp, e.payload) for e in sink.media_events])
    expected = _expected(source)
    assert [r[:2] for r in received] == [x[:2] for x in expected]
    assert received == expected
    assert _received_counts(received) == _source_counts(source)
    assert sink.metadata_events, "onMetaData was sent by both publishers"


@pytest.mark.slow
async def test_hevc_arrives_as_enhanced_rtmp(
    rtmp: tuple[RtmpServer, Recorder], tmp_path: Path
) -> None:
    from ingest.flv import parse_video

    server, recorder = rtmp
    source = make_flv(tmp_path / "hevc.flv", video="libx265", audio="aac", seconds=1)
    assert await publish_with_pyav(source, f"rtmp://127.0.0.1:{server.port}/live/hevc") == 0
    (sink,) = await recorder.wait_ended()
    video = [e for e in sink.media_events if e.is_video]
    assert video[0].payload[0] & 0x80, "Enhanced RTMP header bit"
    packets = [p for e in video for p in parse_video(e.payload, e.timestamp)]
    assert packets[0].kind == "config"
    assert {p.codec for p in packets} == {"hevc"}
    frames = [p for p in packets if p.kind == "frame"]
    assert frames[0].is_keyframe
    assert len(frames) == 30


@pytest.mark.slow
async def test_connection_counts_every_byte(
    rtmp: tuple[RtmpServer, Recorder], tmp_path: Path
) -> None:
    server, recorder = rtmp
    source = make_flv(tmp_path / "clip.flv", seconds=1)
    assert await publish_with_ffmpeg(source, f"rtmp://127.0.0.1:{server.port}/live/k") == 0
    (sink,) = await recorder.wait_ended()
    assert sink.end is not None
    payload = sum(len(e.payload) for e in sink.media_events)
    # Handshake (3073 bytes) + commands + chunk headers come on top of the payload.
    assert sink.end[2] > payload + 3073
