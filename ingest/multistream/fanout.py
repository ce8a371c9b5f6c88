"""One live stream forwarded to its targets: the source's messages in, each target's
connection out (see :mod:`ingest.multistream`)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable

from ingest.multistream.backlog import Packet, media_packet, metadata_packet
from ingest.multistream.model import ForwardSettings, MultistreamObserver, Target, TargetStats
from ingest.multistream.target import TargetLink
from ingest.rtmp.events import MediaReceived, MetadataReceived


class Multistream:
    """Forwards one live stream to its targets, each over its own connection.

    Feed it the source's metadata and media as they arrive (:meth:`metadata`,
    :meth:`media`: no await, no copy per target); each target gets the same messages in
    the same order, from the start of the session if it connects in time, else from the
    next keyframe, with the stream's headers first. :meth:`close` ends every target (what
    is queued first) and returns their final counters. Must be made and used on the
    running event loop.
    """

    def __init__(
        self,
        targets: Iterable[Target],
        settings: ForwardSettings,
        observer: MultistreamObserver | None = None,
    ) -> None:
        self.settings = settings
        self.observer = observer
        self._links: dict[str, TargetLink] = {}
        #: The stream's current metadata and sequence headers, in the order they came.
        self._headers: dict[tuple[object, ...], Packet] = {}
        self._has_video = False
        self._forwarded = False
        self._tls: ssl.SSLContext | None = None
        self._pending = list(targets)
        self._closed = False
        #: Media payload bytes of the source so far, sequence headers aside (what a
        #: target added now has missed).
        self.media_bytes = 0

    def start(self) -> None:
        """Start connecting to every target."""
        pending, self._pending = self._pending, []
        for target in pending:
            self.add(target)

    # -- feeding ------------------------------------------------------------------------

    def metadata(self, event: MetadataReceived) -> None:
        self._forward(metadata_packet(event.timestamp, event.name, event.values))

    def media(self, event: MediaReceived) -> None:
        video = event.message_type == 9
        if video:
            self._has_video = True
        self._forward(
            media_packet(event.message_type, event.timestamp, event.payload, self._has_video)
        )

    def _forward(self, packet: Packet) -> None:
        self._forwarded = True
        if packet.header:
            self._headers.pop(packet.track, None)
            self._headers[packet.track] = packet
        else:
            self.media_bytes += packet.media_size
        for link in self._links.values():
            link.offer(packet)

    def headers(self) -> list[Packet]:
        """What a target that starts over gets first."""
        return list(self._headers.values())

    # -- targets ------------------------------------------------------------------------

    def add(self, target: Target) -> None:
        """Forward to one more target from now on (from the next keyframe, unless nothing
        was forwarded yet)."""
        if self._closed or target.id in self._links:
            return
        link = TargetLink(target, self.settings, self.headers, self.observer, self._context)
        if self._forwarded:
            link.backlog.lost()  # it joins late: the headers, then from the next keyframe
            link.backlog.rejoin()
        self._links[target.id] = link
        link.start()

    async def remove(self, target_id: str) -> TargetStats | None:
        """Stop forwarding to a target (deleted or disabled meanwhile); its last counters."""
        link = self._links.pop(target_id, None)
        return None if link is None else await link.close()

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self.settings.ca_file or None)
        return self._tls

    # -- the end and the counters -------------------------------------------------------

    async def close(self) -> list[TargetStats]:
        """End every target with the session (each first gets what is queued for it, up
        to ``drain_timeout``); their final counters."""
        self._closed = True
        links = list(self._links.values())
        return list(await asyncio.gather(*(link.close() for link in links)))

    def stats(self) -> list[TargetStats]:
        return [link.stats() for link in self._links.values()]
