"""A session's audio for its renditions: the source's, copied, or made AAC once for all.

Every rendition carries the source's audio. AAC and MP3 go into MPEG-TS renditions as
they are, and anything into fMP4 ones (stream copy, with a template made from the
source's own sequence header, as the source segmenter makes its own:
:func:`sessions.hls.templates.open_templates`). Other codecs (Opus, FLAC, AC-3, E-AC-3)
cannot go into MPEG-TS here, so for MPEG-TS renditions they are decoded and encoded to
AAC, once per session, and every rendition gets the same packets.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any, NamedTuple

import av
import av.container

from sessions.hls.templates import (
    TS_AUDIO,
    SegmentFormat,
    Templates,
    TrackSetup,
    open_templates,
)

from .interface import MediaFrame, TrackConfig

__all__ = ["AudioPacket", "SessionAudio"]

MS = Fraction(1, 1000)
_AUDIO = 8
#: Bits per second of the AAC made from other codecs.
AAC_BITRATE = 128_000


class AudioPacket(NamedTuple):
    """One coded audio frame for the renditions (ms timestamps)."""

    dts: int
    data: bytes
    duration: int


class SessionAudio:
    """Turns the source's audio frames into the renditions' audio packets."""

    def __init__(self, config: TrackConfig, frame_tag: bytes, segment_format: SegmentFormat):
        self.codec = config.codec
        self._source: Templates = open_templates(
            [TrackSetup(_AUDIO, config.codec, config.tag, frame_tag)]
        )
        source = self._source.audio
        assert source is not None
        self._decoder: av.AudioCodecContext | None = None
        self._holder: av.container.OutputContainer | None = None
        self._encoder: av.AudioStream | None = None
        self.template: av.AudioStream = source
        #: The AudioSpecificConfig (or other record) the renditions' audio is described by.
        self.record = config.config
        self._frame_ms = 21
        if segment_format == "mpegts" and config.codec not in TS_AUDIO:
            self._transcode_to_aac(source)

    @property
    def transcoded(self) -> bool:
        return self._encoder is not None

    def _transcode_to_aac(self, source: av.AudioStream) -> None:
        decoder = av.CodecContext.create(source.codec_context.name, "r")
        assert isinstance(decoder, av.AudioCodecContext)
        parameters = source.codec_context
        if parameters.extradata:
            decoder.extradata = parameters.extradata
        decoder.sample_rate = parameters.sample_rate
        decoder.layout = parameters.layout
        holder = av.open(io.BytesIO(), "w", format="matroska")
        assert isinstance(holder, av.container.OutputContainer)
        rate = parameters.sample_rate if parameters.sample_rate in _AAC_RATES else 48000
        encoder = holder.add_stream("aac", rate=rate)
        assert isinstance(encoder, av.AudioStream)
        encoder.layout = "stereo" if parameters.channels >= 2 else "mono"
        encoder.codec_context.bit_rate = AAC_BITRATE
        holder.start_encoding()
        self._decoder, self._holder, self._encoder = decoder, holder, encoder
        self.codec = "aac"
        self.template = encoder
        self.record = bytes(encoder.codec_context.extradata or b"")
        self._frame_ms = round(1024 * 1000 / rate)

    def packets(self, frame: MediaFrame) -> list[AudioPacket]:
        """The renditions' packets for one source frame (none, or several, when
        transcoding); raises ``av.FFmpegError`` for a frame the decoder refuses."""
        if self._decoder is None:
            return [AudioPacket(frame.dts, frame.data, self._frame_ms)]
        assert self._encoder is not None
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = frame.dts
        packet.time_base = MS
        out: list[AudioPacket] = []
        for decoded in self._decoder.decode(packet):
            out += self._encode(decoded)
        return out

    def flush(self) -> list[AudioPacket]:
        """What the decoder and encoder still hold (at the end)."""
        if self._decoder is None or self._encoder is None:
            return []
        out: list[AudioPacket] = []
        for decoded in self._decoder.decode(None):
            out += self._encode(decoded)
        return out + self._encoded(self._encoder.codec_context.encode(None))

    def _encode(self, decoded: av.AudioFrame) -> list[AudioPacket]:
        assert self._encoder is not None
        rate = self._encoder.codec_context.sample_rate
        if decoded.pts is not None and decoded.time_base is not None:
            decoded.pts = round(decoded.pts * decoded.time_base * rate)
        decoded.time_base = Fraction(1, rate)
        return self._encoded(self._encoder.codec_context.encode(decoded))

    def _encoded(self, packets: list[av.Packet[Any]]) -> list[AudioPacket]:
        out: list[AudioPacket] = []
        for packet in packets:
            if packet.pts is None or packet.time_base is None:
                continue
            dts = packet.dts if packet.dts is not None else packet.pts
            out.append(
                AudioPacket(round(dts * packet.time_base * 1000), bytes(packet), self._frame_ms)
            )
        return out

    def close(self) -> None:
        if self._holder is not None:
            self._holder.close()
            self._holder = None
        self._source.close()


#: Sample rates AAC takes.
_AAC_RATES = frozenset(
    {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}
)
