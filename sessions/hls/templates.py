"""Codec parameters for stream copy, taken from the publisher's own sequence headers.

PyAV can only stream-copy into a container through an output stream created from a
template input stream (``add_stream_from_template`` copies the codec parameters,
extradata included, so the MPEG-TS muxer can turn AVCC/HVCC frames into Annex B and
write ADTS headers for raw AAC). Rather than run a demuxer over the live bytes, the
segmenter keeps the last sequence header of each track and, when it starts (or after a
configuration change), builds a tiny in-memory FLV file: the FLV header, the original
sequence-header tag bodies and the first coded frame of each track (the demuxer needs a
frame to fill in picture size and the real sample rate). FFmpeg's FLV demuxer reads it,
Enhanced RTMP FourCCs included, and its streams serve as templates for every segment
until the configuration changes again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import av
import av.container

from ingest.rtmp.events import AUDIO, VIDEO

__all__ = [
    "FMP4_AUDIO",
    "FMP4_VIDEO",
    "TS_AUDIO",
    "TS_VIDEO",
    "TemplateError",
    "Templates",
    "TrackSetup",
    "build_flv",
    "choose_format",
    "open_templates",
]

SegmentFormat = Literal["mpegts", "fmp4"]

#: Codecs carried in MPEG-TS segments ("auto" picks TS when every track is in these).
TS_VIDEO = frozenset({"h264"})
TS_AUDIO = frozenset({"aac", "mp3"})
#: Codecs carried in fMP4/CMAF segments.
FMP4_VIDEO = frozenset({"h264", "hevc", "av1", "vp9"})
FMP4_AUDIO = frozenset({"aac", "mp3", "opus", "flac", "ac3", "eac3"})
#: Codecs whose frames cannot be understood without a sequence header first.
NEEDS_CONFIG = frozenset({"h264", "hevc", "av1", "vp9", "aac", "opus", "flac"})


class TemplateError(Exception):
    """FFmpeg could not make a stream out of a track's configuration."""


@dataclass(frozen=True, slots=True)
class TrackSetup:
    """What one track contributes to the template file."""

    message_type: int  # 8 audio, 9 video
    codec: str
    config_tag: bytes | None  # the sequence-header tag body as received
    frame_tag: bytes | None  # the first coded frame's tag body (a keyframe for video)


@dataclass(slots=True)
class Templates:
    """Template streams for the segment muxers, held by a container that is never
    written: it stays open while they are in use."""

    container: av.container.OutputContainer
    video: av.VideoStream | None
    audio: av.AudioStream | None

    def close(self) -> None:
        self.container.close()


def choose_format(
    requested: Literal["auto", "mpegts", "fmp4"], video: str | None, audio: str | None
) -> SegmentFormat:
    """MPEG-TS when asked for or when "auto" and every track fits it, else fMP4."""
    if requested == "fmp4":
        return "fmp4"
    fits_ts = (video is None or video in TS_VIDEO) and (audio is None or audio in TS_AUDIO)
    if requested == "mpegts" and fits_ts:
        return "mpegts"
    return "mpegts" if requested == "auto" and fits_ts else "fmp4"


def _tag(message_type: int, body: bytes) -> bytes:
    header = bytes((message_type,)) + len(body).to_bytes(3, "big") + bytes(7)
    return header + body + (11 + len(body)).to_bytes(4, "big")


def build_flv(tracks: list[TrackSetup]) -> bytes:
    """An FLV file holding each track's sequence header then its first frame, at 0 ms."""
    flags = 0
    for track in tracks:
        flags |= 0x04 if track.message_type == AUDIO else 0x01
    parts = [b"FLV\x01", bytes((flags,)), (9).to_bytes(4, "big"), bytes(4)]
    for track in tracks:
        if track.config_tag is not None:
            parts.append(_tag(track.message_type, track.config_tag))
    for track in tracks:
        if track.frame_tag is not None:
            parts.append(_tag(track.message_type, track.frame_tag))
    return b"".join(parts)


def open_templates(tracks: list[TrackSetup]) -> Templates:
    """Open the template file; raises :class:`TemplateError` when a track yields no
    usable stream (unknown to FFmpeg, or parameters it could not fill in)."""
    data = build_flv(tracks)
    try:
        container = av.open(io.BytesIO(data), format="flv")
    except (av.FFmpegError, ValueError) as exc:
        raise TemplateError(f"cannot read codec configuration: {exc}") from exc
    assert isinstance(container, av.container.InputContainer)
    video: av.VideoStream | None = None
    audio: av.AudioStream | None = None
    for stream in container.streams:
        if isinstance(stream, av.VideoStream) and video is None:
            video = stream
        elif isinstance(stream, av.AudioStream) and audio is None:
            audio = stream
    wanted = {track.message_type for track in tracks}
    missing = (VIDEO in wanted and (video is None or not video.codec_context.width)) or (
        AUDIO in wanted and (audio is None or not audio.codec_context.sample_rate)
    )
    if missing:
        container.close()
        raise TemplateError("codec configuration gave no usable stream")
    try:
        return _hold(video, audio)
    finally:
        # The probed input (its demuxer, and what FFmpeg decoded to fill in the codec
        # parameters) costs about 4 MiB per session; the copies in an unwritten output
        # container cost next to nothing.
        container.close()


def _hold(video: av.VideoStream | None, audio: av.AudioStream | None) -> Templates:
    """Copy the template streams' parameters into an output container that is never
    written (Matroska takes every codec the segmenter supports)."""
    holder = av.open(io.BytesIO(), "w", format="matroska")
    assert isinstance(holder, av.container.OutputContainer)
    held_video: av.VideoStream | None = None
    held_audio: av.AudioStream | None = None
    try:
        if video is not None:
            stream = holder.add_stream_from_template(video)
            assert isinstance(stream, av.VideoStream)
            held_video = stream
        if audio is not None:
            sound = holder.add_stream_from_template(audio)
            assert isinstance(sound, av.AudioStream)
            held_audio = sound
    except (av.FFmpegError, ValueError) as exc:
        holder.close()
        raise TemplateError(f"cannot copy codec configuration: {exc}") from exc
    return Templates(holder, held_video, held_audio)
