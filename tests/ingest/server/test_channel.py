"""The main process <-> worker channel: framing and requests, over a real socket pair."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.config import Config, HlsConfig, RtmpConfig, config_from_dict, config_to_dict
from ingest.hooks import PublishAttempt
from ingest.rtmp.events import EndCause
from ingest.server.channel import (
    MAX_FRAME,
    Channel,
    ChannelClosed,
    FrameDecoder,
    RemoteError,
    encode_frame,
)
from sessions.process_messages import (
    Claim,
    Close,
    Disconnected,
    Ended,
    Hello,
    Message,
    Opened,
    Release,
    Saved,
    Stop,
    Suspended,
    Wire,
    decode,
    encode,
)
from storage.models import EndReason, SessionRecord

MESSAGES: list[Wire] = [
    {"op": "hello", "config": {"a": [1, 2.5, None, True]}},
    {"op": "ended", "session": "é" * 300},
    {"re": 7, "result": {"allowed": False, "code": "NetStream.Publish.BadName"}},
    {},
]


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1))
def test_frames_decode_whatever_the_read_sizes(sizes: list[int]) -> None:
    data = b"".join(encode_frame(m) for m in MESSAGES)
    decoder = FrameDecoder()
    out: list[Wire] = []
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


def _claim(conn: int) -> Claim:
    return Claim(PublishAttempt(conn, "127.0.0.1:5000", "live", "k", "", None))


async def test_requests_are_answered_and_notices_keep_their_order() -> None:
    seen: list[Message] = []

    async def answer(message: Message) -> Any:
        if isinstance(message, Disconnected):
            raise RuntimeError("no such thing")
        assert isinstance(message, Claim)
        await asyncio.sleep(0.01)
        return {"conn": message.attempt.connection_id, "notices_before": len(seen)}

    left, right, _ = await _pair(on_request=answer, on_notice=seen.append)
    try:
        for i in range(5):
            left.notify(Release(i))
        result = await left.request(_claim(99))
        # A request sent after notices is handled after them.
        assert result == {"conn": 99, "notices_before": 5}
        assert seen == [Release(i) for i in range(5)]
        with pytest.raises(RemoteError, match="RuntimeError: no such thing"):
            await left.request(Disconnected(1, EndCause.CLOSED_BY_PEER, "gone"))
        answers = await asyncio.gather(*(left.request(_claim(i)) for i in range(20)))
        assert [a["conn"] for a in answers] == list(range(20))
    finally:
        await left.close()
        await right.close()


async def test_a_request_fails_when_the_other_side_goes() -> None:
    async def never(message: Message) -> Any:
        await asyncio.Event().wait()

    left, right, _ = await _pair(on_request=never)
    pending = asyncio.ensure_future(left.request(_claim(1)))
    await asyncio.sleep(0.05)
    await right.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(pending, 5)
    await asyncio.wait_for(left.closed.wait(), 5)
    with pytest.raises(ChannelClosed):
        await left.request(_claim(2))
    left.notify(Stop())  # sending on a closed channel is a no-op
    await left.close()


async def test_a_message_that_is_not_one_fails_alone() -> None:
    """A request with an unknown op is answered with an error, an unknown notice is
    logged and dropped; the channel goes on."""
    seen: list[Message] = []
    left, right, _ = await _pair(on_notice=seen.append)
    try:
        left._send({"op": "teleport", "id": 1000})
        left._send({"op": "released", "conn": 3})
        left.notify(Release(4))
        with pytest.raises(RemoteError, match="AssertionError: unexpected request"):
            await left.request(_claim(5))  # right refuses every request
        assert seen == [Release(4)]
    finally:
        await left.close()
        await right.close()


def test_every_message_survives_the_trip() -> None:
    record = SessionRecord(
        id="s", stream_id="t", name="cam", created_at=1.5, last_seen=2.5, updated_at=3.0
    )
    record.end_reason = EndReason.KICKED
    messages: list[Message] = [
        Hello(2, {"rtmp": {"listen": ":1935"}}, "http://x", [3, 4], [5]),
        _claim(7),
        Close(7, EndReason.REPLACED, "replaced"),
        Opened(7, record),
        Saved([record, record]),
        Disconnected(7, EndCause.PROTOCOL_ERROR, "bad chunk"),
        Suspended(record),
        Ended("s"),
        Stop(),
    ]
    for message in messages:
        wire = json.loads(json.dumps(encode(message)))
        assert decode(wire) == message
    assert isinstance(decode(encode(messages[3])).record.end_reason, EndReason)  # type: ignore[union-attr]


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
    assert decode(encode(Opened(1, record))) == Opened(1, record)
