"""The forwarding engine's rules without sockets: what one target's backlog queues and
skips, the shared packets, and target URLs shown without their keys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.config import MultistreamConfig
from ingest.multistream import ForwardSettings
from ingest.multistream.backlog import Backlog, Packet, media_packet, metadata_packet
from ingest.rtmp import amf0
from ingest.rtmp.chunks import ChunkReader
from ingest.rtmp.limits import Limits
from ingest.rtmp.url import MASK, mask_url, parse_rtmp_url

VIDEO_CONFIG = b"\x17\x00\x00\x00\x00" + b"\x01\x64\x00\x1f\xff\xe1\x00\x04abcd\x01\x00\x02xy"
AUDIO_CONFIG = b"\xaf\x00\x11\x90"


def key(size: int = 1000) -> Packet:
    return media_packet(9, 0, b"\x17\x01\x00\x00\x00" + bytes(size), True)


def inter(size: int = 500) -> Packet:
    return media_packet(9, 0, b"\x27\x01\x00\x00\x00" + bytes(size), True)


def audio(size: int = 100, has_video: bool = True) -> Packet:
    return media_packet(8, 0, b"\xaf\x01" + bytes(size), has_video)


def headers() -> list[Packet]:
    return [
        metadata_packet(0, "onMetaData", {"width": 320.0}),
        media_packet(9, 0, VIDEO_CONFIG, False),
        media_packet(8, 0, AUDIO_CONFIG, False),
    ]


def drain(backlog: Backlog) -> list[Packet]:
    taken = []
    while (packet := backlog.take()) is not None:
        taken.append(packet)
    return taken


def test_packets_are_classified_as_the_flv_parsers_see_them() -> None:
    meta, vconf, aconf = headers()
    assert (meta.header, meta.start, meta.media_size) == (True, False, 0)
    assert (vconf.header, vconf.start, vconf.track) == (True, False, (9, 0, None))
    assert (aconf.header, aconf.start, aconf.track) == (True, False, (8, 0, None))
    assert key().start and not key().header
    assert not inter().start
    assert not audio(has_video=True).start and audio(has_video=False).start
    garbage = media_packet(9, 0, b"\x17", True)  # too short to parse: forwarded as a frame
    assert not garbage.start and not garbage.header


def test_a_packet_is_chunked_once_and_parses_back() -> None:
    packet = key(10_000)
    data = packet.encoded(1)
    assert packet.encoded(1) is data  # shared by every target on stream 1
    assert packet.encoded(7) != data
    reader = ChunkReader(Limits())
    reader.chunk_size = 4096
    reader.max_message_size = 1 << 20
    reader.feed(data)
    message = reader.next_message()
    assert message is not None
    assert (message.type_id, message.stream_id, message.payload) == (9, 1, packet.payload)
    meta = headers()[0]
    assert amf0.decode_all(meta.payload)[:2] == ["@setDataFrame", "onMetaData"]


def test_first_connection_gets_everything_in_order() -> None:
    backlog = Backlog(max_buffer=1 << 20)
    stream = [*headers(), audio(), key(), audio(), inter()]
    for packet in stream:
        assert backlog.offer(packet, headers)
    assert drain(backlog) == stream
    assert backlog.skipped_bytes == 0


def test_past_max_buffer_media_is_skipped_up_to_the_next_keyframe_that_fits() -> None:
    backlog = Backlog(max_buffer=3000)
    assert backlog.offer(key(1000), headers)
    assert backlog.offer(inter(1000), headers)
    late = inter(1500)
    assert not backlog.offer(late, headers)  # over: skipping starts
    skipped = late.media_size
    dropped = [audio(), inter()]
    for packet in dropped:
        assert not backlog.offer(packet, headers)
        skipped += packet.media_size
    new_config = media_packet(9, 0, VIDEO_CONFIG + b"\x00", False)
    assert backlog.offer(new_config, headers)  # a header is never skipped
    too_big = key(2000)
    assert not backlog.offer(too_big, headers)  # a keyframe that does not fit yet
    skipped += too_big.media_size
    assert backlog.skipped_bytes == skipped
    drain(backlog)
    resume = key(1000)
    assert backlog.offer(resume, headers)
    assert drain(backlog) == [resume]  # no headers again: the target kept its own
    assert backlog.offer(audio(), headers)


def test_a_target_that_connects_again_starts_at_a_keyframe_after_the_headers() -> None:
    backlog = Backlog(max_buffer=1 << 20)
    queued = [key(), audio()]
    for packet in queued:
        backlog.offer(packet, headers)
    backlog.lost()
    assert backlog.skipped_bytes == sum(p.media_size for p in queued)
    missed = [audio(), inter()]
    for packet in missed:
        assert not backlog.offer(packet, headers)  # not connected
    backlog.rejoin()
    waiting = [audio(), inter(), headers()[1]]
    for packet in waiting:
        assert not backlog.offer(packet, headers)  # live again: waits for a keyframe
    start = key()
    assert backlog.offer(start, headers)
    taken = drain(backlog)
    assert [p.payload for p in taken[:3]] == [p.payload for p in headers()]
    assert taken[3:] == [start]
    total = sum(p.media_size for p in [*queued, *missed, *waiting[:2]])
    assert backlog.skipped_bytes == total


def test_audio_only_streams_start_on_any_audio_frame() -> None:
    backlog = Backlog(max_buffer=1 << 20)
    backlog.lost()
    backlog.rejoin()
    first = audio(has_video=False)
    assert backlog.offer(first, lambda: headers()[2:])
    assert [p.payload for p in drain(backlog)] == [AUDIO_CONFIG, first.payload]
    # Video that appears later waits for its keyframe.
    assert not backlog.offer(inter(), headers)
    assert backlog.offer(key(), headers)


def _make(kind: str, size: int) -> Packet:
    if kind == "key":
        return key(size)
    if kind == "inter":
        return inter(size)
    if kind == "audio":
        return audio(size)
    if kind == "vconf":
        return media_packet(9, 0, VIDEO_CONFIG, False)
    return metadata_packet(0, "onMetaData", {})


_kinds = st.sampled_from(["key", "inter", "audio", "vconf", "meta", "take", "lost", "rejoin"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_kinds, st.integers(1, 3000)), max_size=80), st.integers(100, 6000))
def test_backlog_invariants(steps: list[tuple[str, int]], max_buffer: int) -> None:
    """Whatever arrives and whatever the target takes: every media byte offered (headers
    aside) is queued, taken or counted as skipped, exactly; the queue holds at most
    max_buffer but for headers; after a skip or a rejoin, the first frame queued is a
    start point."""
    backlog = Backlog(max_buffer)
    offered = taken = 0
    expect_start = False
    for kind, size in steps:
        if kind == "take":
            taken += sum(p.media_size for p in drain(backlog) if not p.header)
            continue
        if kind == "lost":
            backlog.lost()
            continue
        if kind == "rejoin":
            if not backlog.accepting:
                backlog.rejoin()
                expect_start = True
            continue
        packet = _make(kind, size)
        if not packet.header:
            offered += packet.media_size
        if backlog.offer(packet, headers):
            if not packet.header:
                if expect_start:
                    assert packet.start
                expect_start = False
        elif backlog.accepting and not packet.header:
            expect_start = True
        assert backlog.queued_bytes == sum(len(p.payload) for p in backlog.queue)
        assert sum(len(p.payload) for p in backlog.queue if not p.header) <= max_buffer
    queued = sum(p.media_size for p in backlog.queue if not p.header)
    assert offered == taken + queued + backlog.skipped_bytes


# --- target URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "parts", "masked"),
    [
        (
            "rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl",
            ("rtmp", "a.rtmp.youtube.com", 1935, "live2", "abcd-efgh-ijkl"),
            "rtmp://a.rtmp.youtube.com/live2/****",
        ),
        (
            "rtmps://live-api-s.facebook.com:443/rtmp/FB-123?s_bl=1&a=x",
            ("rtmps", "live-api-s.facebook.com", 443, "rtmp", "FB-123?s_bl=1&a=x"),
            "rtmps://live-api-s.facebook.com/rtmp/****",
        ),
        (
            "rtmp://127.0.0.1:19350/app/inst/key",
            ("rtmp", "127.0.0.1", 19350, "app/inst", "key"),
            "rtmp://127.0.0.1:19350/app/inst/****",
        ),
        (
            "RTMP://[::1]:1936/live/k",
            ("rtmp", "::1", 1936, "live", "k"),
            "rtmp://[::1]:1936/live/****",
        ),
    ],
)
def test_target_urls(url: str, parts: tuple[object, ...], masked: str) -> None:
    parsed = parse_rtmp_url(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.app, parsed.key) == parts
    assert parsed.masked() == masked == str(parsed) == mask_url(url)
    assert parsed.key not in repr(parsed)
    assert parse_rtmp_url(parsed.full) == parsed


@pytest.mark.parametrize(
    "url",
    [
        "http://host/live/secretkey",
        "rtmp://host/secretkey",
        "rtmp://host/live/",
        "rtmp://user:secretkey@host/live/k",
        "rtmp://host:0/live/secretkey",
        "rtmp://host:99999/live/secretkey",
        "rtmp:///live/secretkey",
        "rtmp://ho st/live/secretkey",
        "rtmp://host/live/secret key",
        "rtmp://host//secretkey",
        "rtmp://[nothex]/live/secretkey",
        "",
    ],
)
def test_bad_target_urls_are_refused_without_their_key(url: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rtmp_url(url)
    assert "secret" not in str(info.value)
    assert "secretkey" not in mask_url(url)


def test_a_peers_message_is_redacted() -> None:
    url = parse_rtmp_url("rtmp://host/live/sk_live_123?token=abc")
    text = "Stream sk_live_123 rejected (sk_live_123?token=abc)"
    assert url.redact(text) == f"Stream {MASK} rejected ({MASK})"


def test_the_engine_settings_are_the_configuration() -> None:
    assert ForwardSettings.from_config(MultistreamConfig()) == ForwardSettings()
    custom = MultistreamConfig(max_buffer=1 << 20, retry_min=0.5, ca_file="ca.pem")
    settings = ForwardSettings.from_config(custom)
    assert (settings.max_buffer, settings.retry_min, settings.ca_file) == (1 << 20, 0.5, "ca.pem")
