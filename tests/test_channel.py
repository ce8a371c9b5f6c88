"""The main process <-> worker channel: framing and requests, over a real socket pair."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.config import Config, HlsConfig, RtmpConfig, config_from_dict, config_to_dict
from ingest.server.channel import (
    MAX_FRAME,
    Channel,
    ChannelClosed,
    FrameDecoder,
    Message,
    RemoteError,
    encode_frame,
)
from ingest.server.workers import record_from_dict, record_to_dict
from storage.models import SessionRecord

MESSAGES: list[Message] = [
    {"op": "hello", "config": {"a": [1, 2.5, None, True]}},
    {"op": "ended", "session": "é" * 300},
    {"re": 7, "result": {"allowed": False, "code": "NetStream.Publish.BadName"}},
    {},
]


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1))
def test_frames_decode_whatever_the_read_sizes(sizes: list[int]) -> None:
    data = b"".join(encode_frame(m) for m in MESSAGES)
    decoder = FrameDecoder()
    out: list[Message] = []
    pos = 0
    for size in sizes * (len(data) // sum(sizes) + 1):
        out += decoder.feed(data[pos : pos + size])
        pos += size
    assert out == MESSAGES


def test_frame_decoding_one_byte_at_a_time() -> None:
    data = b"".join(encode_frame(m) for m in MESSAGES)
    decoder = FrameDecoder()
    out = [m for i in range(len(data)) for m in decoder.feed(data[i : i + 1])]
    assert out == MESSAGES


def test_oversized_and_non_object_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="over the"):
        FrameDecoder().feed((MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="JSON object"):
        FrameDecoder().feed(b"\x00\x00\x00\x02[]")


async def _pair(
    on_request: Any = None, on_notice: Any = None
) -> tuple[Channel, Channel, list[Message]]:
    left_sock, right_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    notices: list[Message] = []

    async def refuse(message: Message) -> Any:
        raise AssertionError(f"unexpected request {message}")

    left = Channel(left_sock, on_request=refuse, on_notice=notices.append, name="left")
    right = Channel(
        right_sock,
        on_request=on_request or refuse,
        on_notice=on_notice or notices.append,
        name="right",
    )
    await left.start()
    await right.start()
    return left, right, notices


async def test_requests_are_answered_and_notices_keep_their_order() -> None:
    seen: list[Message] = []

    async def answer(message: Message) -> Any:
        if message["op"] == "fail":
            raise RuntimeError("no such thing")
        await asyncio.sleep(0.01)
        return {"echo": message["value"], "notices_before": len(seen)}

    left, right, _ = await _pair(on_request=answer, on_notice=seen.append)
    try:
        for i in range(5):
            left.notify("n", i=i)
        result = await left.request("echo", value=[1, "x"])
        # A request sent after notices is handled after them.
        assert result == {"echo": [1, "x"], "notices_before": 5}
        assert [m["i"] for m in seen] == list(range(5))
        with pytest.raises(RemoteError, match="RuntimeError: no such thing"):
            await left.request("fail")
        answers = await asyncio.gather(*(left.request("echo", value=i) for i in range(20)))
        assert [a["echo"] for a in answers] == list(range(20))
    finally:
        await left.close()
        await right.close()


async def test_a_request_fails_when_the_other_side_goes() -> None:
    async def never(message: Message) -> Any:
        await asyncio.Event().wait()

    left, right, _ = await _pair(on_request=never)
    pending = asyncio.ensure_future(left.request("stuck"))
    await asyncio.sleep(0.05)
    await right.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(pending, 5)
    await asyncio.wait_for(left.closed.wait(), 5)
    with pytest.raises(ChannelClosed):
        await left.request("late")
    left.notify("dropped")  # sending on a closed channel is a no-op
    await left.close()


def test_configuration_and_session_records_survive_the_trip() -> None:
    config = Config(
        rtmp=RtmpConfig(listen="[::1]:1935", processes=3), hls=HlsConfig(window=9, enabled=False)
    )
    assert config_from_dict(config_to_dict(config)) == config
    record = SessionRecord(
        id="s", stream_id="t", name="cam", created_at=1.5, last_seen=2.5, updated_at=3.0
    )
    record.tracks = [{"kind": "video", "codec": "h264", "width": 1280}]
    record.issues = [{"code": "timestamp_jump", "message": "m", "at": 2.0}]
    assert record_from_dict(record_to_dict(record)) == record
