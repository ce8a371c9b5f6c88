"""A delivery's body: the event with its stream and session as the API shows them.

The body is built once, at the first attempt of any delivery of the event, and kept with
the event, so every endpoint and every retry gets the same bytes and the same ``id``. Its
session is the one the event kept when it was written (``stream.started``: live;
``stream.idle``: the final one), its stream the stream as it is at that first attempt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sessions.http.timefmt import format_time
from sessions.http.views import as_json, session_view, stream_view
from storage import PendingDelivery, Store


class Payloads:
    """Builds bodies from the store, with the URLs the API would show."""

    def __init__(
        self, store: Store, *, ingest_urls: Sequence[str], playback_base: str | None
    ) -> None:
        self.store = store
        self.ingest_urls = list(ingest_urls)
        self.playback_base = playback_base

    async def body(self, delivery: PendingDelivery) -> str:
        stream_json: dict[str, Any] | None = None
        session_json: dict[str, Any] | None = None
        playback_id: str | None = None
        if delivery.stream_id is not None:
            stream = await self.store.get_stream_any(delivery.stream_id)
            if stream is not None:
                kept = delivery.session
                if kept is not None:  # live or not as the event's session was
                    live = kept.status == "live"
                else:
                    live = await self.store.active_session(stream.id) is not None
                stream_json = as_json(
                    stream_view(
                        stream,
                        ingest_url=self.ingest_urls,
                        live=live,
                        playback_base=self.playback_base,
                    )
                )
                deleted = await self.store.get_stream(stream.id) is None
                stream_json["deleted"] = deleted
                # As GET /api/sessions/{id} shows it: no playback id once deleted.
                playback_id = None if deleted else stream.playback_id
        if delivery.session_id is not None:
            session = delivery.session or await self.store.get_session(delivery.session_id)
            if session is not None:
                session_json = as_json(session_view(session, playback_id=playback_id))
        body = {
            "id": delivery.event_id,
            "event": delivery.event,
            "created_at": format_time(delivery.event_at),
            "stream": stream_json,
            "session": session_json,
            "data": delivery.data,
        }
        return json.dumps(body, separators=(",", ":"))
