"""Per-track facts from codec configuration: :class:`TrackInfo` and the two entry points.

Call these on ``kind == "config"`` packets only (sequence headers are rare; frames are
not parsed). They never raise: whatever cannot be read from a malformed or unfamiliar
configuration is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .audio_config import (
    AudioFacts,
    aac_config_facts,
    ac3_frame_facts,
    flac_config_facts,
    mp3_frame_facts,
    opus_config_facts,
)
from .av1 import av1_config_facts, vpx_config_profile
from .h26x import avc_config_facts, hevc_config_facts

__all__ = ["TrackInfo", "parse_audio_config", "parse_video_config"]


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """What a track's configuration says about it.

    ``width``/``height`` are the displayed picture size after cropping (video).
    ``sample_rate``/``channels`` are what a decoder outputs (audio). ``profile`` is a
    codec profile name such as ``"High"``, ``"Main 10"``, ``"LC"`` or ``"HE-AAC"``.
    """

    codec: str | None
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    profile: str | None = None


def parse_video_config(codec: str | None, data: bytes) -> TrackInfo:
    """Facts from a video sequence header (``VideoPacket.data`` of a ``config`` packet).

    ``codec`` is ``VideoPacket.codec``: ``"h264"`` (avcC), ``"hevc"`` (hvcC), ``"av1"``
    (av1C), ``"vp9"``/``"vp8"`` (vpcC: profile only, the format carries no size). Other
    codecs give a :class:`TrackInfo` with just the codec name.
    """
    if codec == "h264":
        width, height, profile = avc_config_facts(data)
    elif codec == "hevc":
        width, height, profile = hevc_config_facts(data)
    elif codec == "av1":
        width, height, profile = av1_config_facts(data)
    elif codec in ("vp9", "vp8"):
        width, height, profile = None, None, vpx_config_profile(data)
    else:
        return TrackInfo(codec)
    return TrackInfo(codec, width=width, height=height, profile=profile)


def parse_audio_config(
    codec: str | None,
    data: bytes,
    header_sample_rate: int | None = None,
    header_channels: int | None = None,
) -> TrackInfo:
    """Facts from an audio sequence header (``AudioPacket.data`` of a ``config`` packet).

    ``codec`` is ``AudioPacket.codec``. ``"aac"`` reads the AudioSpecificConfig, which
    is authoritative: the legacy header's rate and channels (always 44100 Hz stereo for
    AAC) are ignored. ``"opus"`` reads OpusHead, ``"flac"`` STREAMINFO. ``"ac3"``,
    ``"eac3"`` and ``"mp3"`` have no configuration: pass their first coded frame to
    read its frame header. For every codec but AAC, ``header_sample_rate`` and
    ``header_channels`` (``AudioPacket.sample_rate``/``channels`` of a legacy tag) fill
    in whatever the configuration did not give.
    """
    facts: AudioFacts
    if codec == "aac":
        rate, channels, profile = aac_config_facts(data)
        return TrackInfo(codec, sample_rate=rate, channels=channels, profile=profile)
    if codec == "opus":
        facts = opus_config_facts(data)
    elif codec == "flac":
        facts = flac_config_facts(data)
    elif codec in ("ac3", "eac3"):
        facts = ac3_frame_facts(data)
    elif codec == "mp3":
        facts = mp3_frame_facts(data)
    else:
        facts = (None, None, None)
    rate, channels, profile = facts
    return TrackInfo(
        codec,
        sample_rate=rate if rate is not None else header_sample_rate,
        channels=channels if channels is not None else header_channels,
        profile=profile,
    )
