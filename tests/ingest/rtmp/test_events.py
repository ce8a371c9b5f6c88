"""The per-message constructor of MediaReceived makes the same event as the dataclass's."""

from __future__ import annotations

import dataclasses

import pytest

from ingest.rtmp.events import MediaReceived, media_received


def test_media_received_fills_every_field_like_the_constructor() -> None:
    made = media_received(1, 9, 0xFFFF_FFFF, b"\x17\x01payload")
    expected = MediaReceived(1, 9, 0xFFFF_FFFF, b"\x17\x01payload")
    for field in dataclasses.fields(MediaReceived):  # a field added later must be set too
        assert getattr(made, field.name) == getattr(expected, field.name)
    assert made == expected and hash(made) == hash(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.payload = b""  # type: ignore[misc]
