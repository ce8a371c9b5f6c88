"""Work that follows one publish beside its segmenter: renditions, forwarding to targets.

The session manager owns a publish's counters and segmenter; other work that needs the
same media (a transcoder making renditions, forwarders pushing to multistream targets)
is an :class:`Attachment`, made for each publish that starts by the
:class:`AttachmentFactory` list the manager was built with. The manager calls every
attachment of a publish, on the event loop, in this order:

1. :meth:`Attachment.metadata` and :meth:`Attachment.media` with every metadata and
   media message of the publish, as they are parsed (before its session opens too:
   ``@setDataFrame`` comes before the first media message). These run per message:
   they must be cheap and never block (queue the work, hand it to a thread or process).
2. :meth:`Attachment.opened` once, when the session opens on the first media message
   (before that message's :meth:`~Attachment.media`), with the session's record and its
   media folder (``None`` when HLS is off). It may return a
   :class:`~sessions.hls.MediaTap`: the segmenter then shows it the session's media as it
   places it (configs, frames on the session timeline, segment cuts), in the segmenter's
   thread.
3. :meth:`Attachment.refresh` whenever the manager copies its counters into the record
   (every flush, for the API's live view, and at the end): the attachment writes its own
   counters and issues into the record there.
4. :meth:`Attachment.finish` once the publish is over and, when HLS is on, its segmenter
   finished (so a tap got everything): the attachment ends its work and writes its final
   counters into the record, which is then saved as the session's end. It is awaited;
   keep it bounded (a drain with a timeout). An attachment whose publish never opened a
   session is finished with ``record`` ``None``.

An attachment that raises is logged and left out of the rest of its publish; it never
ends the publish or the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ingest.hooks import Decision, PublishAttempt
from ingest.rtmp.events import MediaReceived, MetadataReceived
from sessions.hls import MediaTap
from storage.models import SessionRecord

__all__ = ["Attachment", "AttachmentFactory", "MediaTaps", "PublishInfo"]


class PublishInfo(Protocol):
    """What an :class:`AttachmentFactory` may know of a publish that starts."""

    @property
    def attempt(self) -> PublishAttempt: ...

    @property
    def decision(self) -> Decision:
        """The owner's grant: the stream, its playback id, whether it records, and what
        the owner passes on for attachments."""
        ...


class Attachment(Protocol):
    def metadata(self, event: MetadataReceived) -> None: ...

    def media(self, event: MediaReceived) -> None: ...

    def opened(self, record: SessionRecord, folder: Path | None) -> MediaTap | None: ...

    def refresh(self, record: SessionRecord, now: float, sample: bool) -> None: ...

    async def finish(self, record: SessionRecord | None) -> None: ...


class AttachmentFactory(Protocol):
    def __call__(self, publish: PublishInfo) -> Attachment | None:
        """The attachment for ``publish``, or ``None`` when it needs none (a stream with
        no profiles, no targets)."""
        ...


class MediaTaps:
    """Several taps as one (the segmenter takes one)."""

    def __init__(self, taps: Sequence[MediaTap]) -> None:
        self.taps = tuple(taps)

    def config(self, video: bool, codec: str, config: bytes, tag: bytes) -> None:
        for tap in self.taps:
            tap.config(video, codec, config, tag)

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
        for tap in self.taps:
            tap.frame(video, dts, pts, data, keyframe, arrival, tag)

    def cut(self, sequence: int, dts: int, discontinuity: bool, arrival: float) -> None:
        for tap in self.taps:
            tap.cut(sequence, dts, discontinuity, arrival)

    def flush(self) -> None:
        for tap in self.taps:
            tap.flush()
