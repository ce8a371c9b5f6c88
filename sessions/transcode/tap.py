"""Feeding a session's renditions from its source segmenter, with no second parse.

:class:`RenditionsTap` is the source :class:`~sessions.hls.Segmenter`'s
:class:`~sessions.hls.segmenter.MediaTap`: in the segmenter's thread it turns what the
segmenter does (a track configured, a frame placed on the session timeline, a segment
started) into :mod:`.interface` items, and hands them to the renditions in batches of
about ``batch_ms`` of media (and when the segmenter finishes), so a session costs a few
hand-overs a second, not one per frame.
"""

from __future__ import annotations

from .interface import Cut, FeedItem, MediaFrame, Renditions, TrackConfig

__all__ = ["RenditionsTap"]


class RenditionsTap:
    """Gives one session's media, as its segmenter places it, to its renditions."""

    def __init__(self, renditions: Renditions, *, batch_ms: int = 200) -> None:
        self.renditions = renditions
        self._batch_ms = batch_ms
        self._items: list[FeedItem] = []
        self._first_dts: int | None = None
        #: The next audio frame carries its message (an audio template is made of it).
        self._audio_tag_wanted = False

    def config(self, video: bool, codec: str, config: bytes, tag: bytes) -> None:
        self._items.append(TrackConfig(video, codec, config, tag))
        if not video:
            self._audio_tag_wanted = True

    def frame(
        self,
        video: bool,
        dts: int,
        pts: int,
        data: bytes,
        keyframe: bool,
        arrival: float,
        tag: bytes,
    ) -> None:
        carried: bytes | None = None
        if not video and self._audio_tag_wanted:
            carried = tag
            self._audio_tag_wanted = False
        self._items.append(MediaFrame(video, dts, pts, data, keyframe, arrival, carried))
        first = self._first_dts
        if first is None:
            self._first_dts = dts
        elif dts - first >= self._batch_ms:
            self.flush()

    def cut(self, sequence: int, dts: int, discontinuity: bool, arrival: float) -> None:
        self._items.append(Cut(sequence, dts, discontinuity, arrival))

    def flush(self) -> None:
        items, self._items = self._items, []
        self._first_dts = None
        if items:
            self.renditions.feed(items)
