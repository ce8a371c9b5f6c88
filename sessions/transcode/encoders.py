"""The H.264 encoder of a rendition: libx264, or h264_nvenc on an NVIDIA GPU.

``[transcode] encoder`` is "libx264", "nvenc" or "auto"; "auto" takes h264_nvenc when
it opens on this machine. Whether it does is found by opening it once on a tiny picture
(:func:`nvenc_problem`, cached for the life of the process): FFmpeg's bundled h264_nvenc
fails at once without an NVIDIA driver and says why.

An encoder is a stream of a holder container that is never written: opened with the
holder's header (FFmpeg then fills in the codec parameters, SPS and PPS as extradata), it
is the template every segment container copies (see :mod:`sessions.hls.templates`). Each
profile's bit rate is capped by a VBV of twice the bit rate, so its segments stay near
the profile's rate; keyframes come where the source's segments start (forced, as IDR
pictures), and where the profile's ``gop`` puts them.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.logging

from ingest.profiles import Profile

__all__ = ["EncoderChoice", "choose_encoder", "nvenc_problem", "open_encoder"]

LIBX264 = "libx264"
NVENC = "h264_nvenc"
MS = Fraction(1, 1000)
#: Seconds between keyframes at most when a profile sets no gop (forced ones come at
#: every source keyframe anyway).
_DEFAULT_GOP = 10.0
#: libx264 preset -> the h264_nvenc preset of about the same speed.
_NVENC_PRESETS = {
    "ultrafast": "p1",
    "superfast": "p1",
    "veryfast": "p2",
    "faster": "p3",
    "fast": "p3",
    "medium": "p4",
    "slow": "p5",
    "slower": "p6",
    "veryslow": "p7",
}


@dataclass(frozen=True, slots=True)
class EncoderChoice:
    """The encoder renditions use, and why (the other one's problem, for the log)."""

    codec: str
    reason: str


@functools.cache
def nvenc_problem() -> str | None:
    """None if h264_nvenc opens here; otherwise why not (FFmpeg's own words)."""
    if NVENC not in av.codecs_available:
        return "this FFmpeg build has no h264_nvenc"
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # so the error names FFmpeg's last log line
    try:
        with av.logging.Capture():
            context = av.CodecContext.create(NVENC, "w")
            assert isinstance(context, av.VideoCodecContext)
            context.width, context.height = 256, 144
            context.pix_fmt = "yuv420p"
            context.time_base = Fraction(1, 30)
            context.open()
    except (av.FFmpegError, ValueError, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        av.logging.set_level(level)
    return None


def choose_encoder(setting: str) -> EncoderChoice:
    """The encoder for ``[transcode] encoder``; "nvenc" is taken even when it does not
    open here (its renditions then fail, saying why)."""
    if setting == LIBX264:
        return EncoderChoice(LIBX264, "configured")
    problem = nvenc_problem()
    if setting == "nvenc":
        return EncoderChoice(NVENC, "configured" if problem is None else problem)
    if problem is None:
        return EncoderChoice(NVENC, "auto: h264_nvenc opens on this machine")
    return EncoderChoice(LIBX264, f"auto: h264_nvenc unusable ({problem})")


def _options(codec: str, profile: Profile, preset: str) -> dict[str, str]:
    rate = {"maxrate": str(profile.bitrate), "bufsize": str(2 * profile.bitrate)}
    if codec == NVENC:
        return {"preset": _NVENC_PRESETS.get(preset, "p4"), "rc": "vbr", "forced-idr": "1", **rate}
    return {"preset": preset, "forced-idr": "1", **rate}


def open_encoder(
    codec: str, profile: Profile, fps: float, preset: str
) -> tuple[av.container.OutputContainer, av.VideoStream]:
    """An open encoder for ``profile`` at ``fps`` frames per second, timestamps in ms;
    its holder must be closed when done. Raises ``av.FFmpegError`` if it cannot open."""
    holder = av.open(io.BytesIO(), "w", format="matroska")
    assert isinstance(holder, av.container.OutputContainer)
    try:
        rate = Fraction(fps).limit_denominator(1001)
        stream = holder.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = profile.width, profile.height
        stream.pix_fmt = "yuv420p"
        context = stream.codec_context
        context.time_base = MS
        context.bit_rate = profile.bitrate
        gop = profile.gop if profile.gop is not None else _DEFAULT_GOP
        context.gop_size = max(1, math.ceil(gop * fps))
        context.options = _options(codec, profile, preset)
        holder.start_encoding()
    except BaseException:
        holder.close()
        raise
    return holder, stream
