"""MediaAccount: the per-session counters, fed literal messages."""

from __future__ import annotations

import pytest

from ingest.rtmp.events import MediaReceived
from sessions.accounting import MediaAccount

AVC_FRAME = b"\x27\x01\x00\x00\x00" + bytes(20)
AVC_KEY = b"\x17\x01\x00\x00\x00" + bytes(20)
AAC_FRAME = b"\xaf\x01" + bytes(10)


def video(ts: int, payload: bytes = AVC_FRAME) -> MediaReceived:
    return MediaReceived(1, 9, ts, payload)


def audio(ts: int, payload: bytes = AAC_FRAME) -> MediaReceived:
    return MediaReceived(1, 8, ts, payload)


def test_bytes_frames_and_span_per_track() -> None:
    account = MediaAccount()
    account.add(video(0, AVC_KEY))
    for i in range(1, 30):
        account.add(video(i * 100 // 3))
        account.add(audio(i * 21))
    account.add(audio(0, b""))  # zero-length audio is legal and counts nothing
    video_track, audio_track = account.tracks_list()
    assert video_track["frames"] == 30 and video_track["keyframes"] == 1
    assert video_track["bytes"] == len(AVC_KEY) + 29 * len(AVC_FRAME)
    assert video_track["fps"] == pytest.approx(30, abs=0.05)
    assert audio_track["frames"] == 29 and audio_track["bytes"] == 29 * len(AAC_FRAME)
    assert account.media_bytes == video_track["bytes"] + audio_track["bytes"]
    assert account.media_duration == 0.966


def test_media_duration_is_wrap_safe() -> None:
    account = MediaAccount()
    start = 0xFFFFFFFF - 500
    for i in range(20):
        account.add(video((start + i * 100) & 0xFFFFFFFF))
    assert account.media_duration == 1.9


def test_interleaving_steps_back_do_not_inflate_the_span() -> None:
    account = MediaAccount()
    for ts in (1000, 1040, 1020, 1080, 1060, 1100):
        account.add(video(ts) if ts % 40 == 0 else audio(ts))
    assert account.media_duration == 0.1


def test_malformed_messages_are_counted_and_skipped() -> None:
    account = MediaAccount()
    account.add(video(0, b"\x17\x01"))  # an AVC tag too short for its header
    account.add(video(33))
    assert account.malformed == 1
    assert account.messages == 2
    assert account.tracks_list()[0]["frames"] == 1
