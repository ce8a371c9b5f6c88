"""HTTP publish authorization (``[auth] mode = "http"``): a callback decides, as nginx-rtmp's
``on_publish`` does.

Every publish is POSTed as JSON ``{app, stream_key, remote_addr, tc_url, flash_ver, args}``
to ``[auth] http_url`` (``args``: the publish name's query, as an object). A 2xx answer
with ``{"stream": "<name>"}`` lets it in and attaches the session to the stream of that
name, created on first use (its own key is never shown: in this mode the callback is what
checks keys). A 4xx (or 3xx) answer refuses it, with the answer's ``reason`` (or
``error``, or its text, or its status) as the refusal's reason in the event log.

When the callback cannot be asked (no connection, no answer within ``http_timeout``, a 5xx,
a 2xx without a stream name), ``http_on_error`` decides: ``deny`` refuses the publish;
``allow`` lets in a key the callback allowed before (since the server started), and
otherwise falls back to the server's own stream keys (``keys`` mode). Allowed answers are
reused for ``http_cache`` seconds for the same key and application.

The key goes only to the configured URL: it is never logged, stored or kept in memory
other than as its hash (the cache's index). Refusals go through the key authorizer's
(:class:`~sessions.auth.KeyAuthorizer`): the same random delay, throttling per address
and event-log row (with its ``publish.rejected`` webhook event). The call is async
(httpx), so the event loop keeps running while a callback thinks; with ``[rtmp]
processes > 1`` it runs in the main process, which every worker's claim asks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from ingest.hooks import Decision, PublishAttempt
from ingest.logs import log_event
from sessions.auth import DENIED, KeyAuthorizer, address_of
from sessions.streams import InvalidName, Streams, check_name
from storage import StreamNameTaken
from storage.models import StreamRecord, hash_key

logger = logging.getLogger("sessions.auth")

#: Allowed keys remembered (for the cache and ``http_on_error = "allow"``).
_MAX_REMEMBERED: Final = 10_000
#: Characters of a refusal's reason kept.
_MAX_REASON: Final = 200


class CallbackFailed(Exception):
    """The callback could not be asked, or answered nonsense (``http_on_error`` decides)."""


@dataclass(frozen=True, slots=True)
class Answer:
    allowed: bool
    #: The stream name (allowed) or the reason (refused).
    text: str


@dataclass(slots=True)
class HttpAuthSettings:
    url: str
    timeout: float = 2.0
    on_error: str = "deny"
    cache: float = 0.0


def _reason(response: httpx.Response) -> str:
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, str):
        text = data
    elif isinstance(data, dict):
        for field in ("reason", "error", "message"):
            if isinstance(data.get(field), str) and data[field].strip():
                text = data[field].strip()
                break
    text = "".join(c if c.isprintable() else " " for c in text)[:_MAX_REASON].strip()
    return text or f"HTTP {response.status_code}"


class HttpAuthorizer:
    """Asks ``settings.url`` about each publish (see the module's description)."""

    def __init__(
        self,
        keys: KeyAuthorizer,
        streams: Streams,
        settings: HttpAuthSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.streams = streams
        self.settings = settings
        self.clock = clock
        self._client = client
        self._own_client = client is None
        #: (hash of the key, app) -> (stream name, when the callback allowed it).
        self._allowed: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    async def close(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        address = address_of(attempt.remote_addr)
        if self.keys.throttled(address):
            return await self.keys.throttle_refusal(attempt, address)
        index = (hash_key(attempt.key), attempt.app)
        name = self._cached(index)
        if name is None:
            try:
                answer = await self._ask(attempt)
            except CallbackFailed as exc:
                return await self._failed(attempt, address, index, str(exc))
            if not answer.allowed:
                reason = f"refused by the authorization callback: {answer.text}"
                return await self.keys.refuse(attempt, address, DENIED, reason, None)
            name = answer.text
            self._remember(index, name)
        return await self._attach(attempt, address, name)

    # -- the callback -------------------------------------------------------------------

    def _body(self, attempt: PublishAttempt) -> dict[str, Any]:
        return {
            "app": attempt.app,
            "stream_key": attempt.key,
            "remote_addr": attempt.remote_addr,
            "tc_url": attempt.tc_url,
            "flash_ver": attempt.encoder,
            "args": dict(urllib.parse.parse_qsl(attempt.query, keep_blank_values=True)),
        }

    async def _ask(self, attempt: PublishAttempt) -> Answer:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        try:
            # httpx's timeout bounds each step; this bounds the whole answer.
            async with asyncio.timeout(self.settings.timeout):
                response = await self._client.post(
                    self.settings.url,
                    json=self._body(attempt),
                    headers={"User-Agent": "rtmp-ingest-auth"},
                    timeout=self.settings.timeout,
                )
        except (httpx.TimeoutException, TimeoutError):
            raise CallbackFailed(f"no answer within {self.settings.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise CallbackFailed(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from None
        if response.status_code >= 500:
            raise CallbackFailed(f"HTTP {response.status_code}: {_reason(response)}")
        if not response.is_success:
            return Answer(False, _reason(response))
        try:
            data = response.json()
        except ValueError:
            raise CallbackFailed(f"HTTP {response.status_code} without JSON") from None
        stream = data.get("stream") if isinstance(data, dict) else None
        if not isinstance(stream, str):
            raise CallbackFailed(f"HTTP {response.status_code} without a stream name")
        try:
            return Answer(True, check_name(stream))
        except InvalidName as exc:
            raise CallbackFailed(f"the stream name it gave is not valid: {exc}") from None

    async def _failed(
        self, attempt: PublishAttempt, address: str, index: tuple[str, str], error: str
    ) -> Decision:
        log_event(
            logger,
            logging.WARNING,
            "auth_callback_failed",
            remote=attempt.remote_addr,
            error=error,
            on_error=self.settings.on_error,
        )
        if self.settings.on_error == "allow":
            remembered = self._allowed.get(index)
            if remembered is not None:
                return await self._attach(attempt, address, remembered[0])
            return await self.keys.authorize(attempt)
        reason = f"authorization callback failed: {error}"
        return await self.keys.refuse(attempt, address, DENIED, reason, None)

    # -- the cache ----------------------------------------------------------------------

    def _cached(self, index: tuple[str, str]) -> str | None:
        if self.settings.cache <= 0:
            return None
        found = self._allowed.get(index)
        if found is None or self.clock() - found[1] >= self.settings.cache:
            return None
        return found[0]

    def _remember(self, index: tuple[str, str], name: str) -> None:
        self._allowed[index] = (name, self.clock())
        self._allowed.move_to_end(index)
        while len(self._allowed) > _MAX_REMEMBERED:
            self._allowed.popitem(last=False)

    # -- the stream ---------------------------------------------------------------------

    async def _stream(self, name: str) -> StreamRecord:
        """The stream named ``name``, created if there is none."""
        store = self.streams.store
        stream = await store.get_stream_by_name(name)
        if stream is not None:
            return stream
        try:
            stream, _ = await self.streams.create(name)
        except StreamNameTaken:  # made meanwhile by another publish or the API
            again = await store.get_stream_by_name(name)
            if again is None:
                raise
            return again
        log_event(logger, logging.INFO, "stream_created", stream=stream.id, by="auth callback")
        return stream

    async def _attach(self, attempt: PublishAttempt, address: str, name: str) -> Decision:
        stream = await self._stream(name)
        if stream.disabled:
            return await self.keys.refuse(attempt, address, DENIED, "stream is disabled", stream.id)
        self.keys.log("publish_accepted", stream_id=stream.id, remote_addr=attempt.remote_addr)
        return Decision(
            True,
            stream_id=stream.id,
            stream_name=stream.name,
            playback_id=stream.playback_id,
            record=stream.record,
        )
