"""RTMP server URLs with a stream key (``rtmp://host[:port]/app/KEY``), as a publisher is
given them by a platform (YouTube, Twitch, Facebook...), and how to show one without its
key.

The key is the last path segment with any ``?query``; the application is the path before
it (``live2``, ``app``, or several segments, ``app/instance``), as OBS and FFmpeg split a
server URL from its key. ``rtmps://`` is RTMP over TLS. The key is a third party's
secret: :meth:`RtmpUrl.masked` (also ``str()`` and ``repr()``) and :func:`mask_url` replace
it with :data:`MASK`, and no error message here repeats it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["DEFAULT_PORTS", "MASK", "RtmpUrl", "mask_url", "parse_rtmp_url"]

#: What a key is shown as.
MASK = "****"
#: The port of each scheme when the URL names none.
DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
#: The longest URL taken.
MAX_LENGTH = 2048

_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True, slots=True)
class RtmpUrl:
    """A parsed target URL. ``key`` is secret: never log it, or the URL unmasked."""

    scheme: str
    host: str
    port: int
    app: str
    key: str

    @property
    def tls(self) -> bool:
        return self.scheme == "rtmps"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def tc_url(self) -> str:
        """The ``tcUrl`` of ``connect``: the URL without the key."""
        return f"{self.scheme}://{self.netloc}/{self.app}"

    @property
    def full(self) -> str:
        """The URL with its key (to store; never to show or log)."""
        return f"{self.tc_url}/{self.key}"

    def masked(self) -> str:
        """The URL with :data:`MASK` for the key."""
        return f"{self.tc_url}/{MASK}"

    def redact(self, text: str) -> str:
        """``text`` (a peer's message, say) with every occurrence of the key masked."""
        for secret in {self.key, self.key.partition("?")[0]}:
            if secret:
                text = text.replace(secret, MASK)
        return text

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"RtmpUrl({self.masked()!r})"


def parse_rtmp_url(text: str) -> RtmpUrl:
    """Parse an ``rtmp://`` or ``rtmps://`` URL with a stream key. Raises
    :class:`ValueError` saying what is wrong, without repeating the key."""
    if not isinstance(text, str):
        raise ValueError("the URL must be a string")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"the URL must be at most {MAX_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError("the URL must not contain spaces or control characters")
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme not in DEFAULT_PORTS:
        raise ValueError("the URL must start with rtmp:// or rtmps://")
    rest = text[match.end() :] if match else ""
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        raise ValueError("a user name or password in the URL is not supported (put it in the key)")
    host, port = _authority(authority, scheme)
    app, _, key = path.rpartition("/")
    if not slash or not app or not app.strip("/"):
        raise ValueError("the URL must name an application and a stream key: rtmp://host/app/key")
    if not key or key.startswith("?"):
        raise ValueError("the URL must end with a stream key: rtmp://host/app/key")
    if "//" in app or app.startswith("/") or "?" in app or "#" in app or "#" in key:
        raise ValueError("the application part of the URL is malformed")
    return RtmpUrl(scheme, host, port, app, key)


def _authority(authority: str, scheme: str) -> tuple[str, int]:
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("the URL's host is not a valid IPv6 address") from None
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("the URL's host is malformed")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = authority.partition(":")
        if not _HOST.fullmatch(host):
            raise ValueError("the URL must name a host: rtmp://host/app/key")
        if colon and not port_text:
            raise ValueError("the URL's port is empty")
    if not port_text:
        return host, DEFAULT_PORTS[scheme]
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError("the URL's port must be a number from 1 to 65535")
    return host, int(port_text)


def mask_url(text: str) -> str:
    """Any URL-like text with its last path segment (where a key would be) masked: for a
    URL that may not parse (so it can still be shown or logged)."""
    try:
        return parse_rtmp_url(text).masked()
    except ValueError:
        pass
    match = _SCHEME.match(text)
    if match is None:
        return MASK
    authority, slash, path = text[match.end() :].partition("/")
    authority = authority.rpartition("@")[2]
    if not slash:
        return f"{match.group(0)}{authority}"
    head = path.rpartition("/")[0]
    return f"{match.group(0)}{authority}/{head + '/' if head else ''}{MASK}"
