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

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_PORTS", "MASK", "RtmpUrl", "mask_url", "parse_rtmp_url"]

#: What a key is shown as.
MASK = "****"
#: The port of each scheme when the URL names none.
DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
#: The longest URL taken.
MAX_LENGTH = 2048

_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]"
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
        for secret in sorted({self.key, self.key.partition("?")[0]}, key=len, reverse=True):
            if secret:
                text = text.replace(secret, MASK)
        return text

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"RtmpUrl({self.masked()!r})"


_SEGMENT = r"[^/?#\x00-\x20\x7f]+"
_PORT = r"6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}"
#: Every URL :func:`parse_rtmp_url` accepts, and only those (the API's document states
#: it): scheme, host (a name or a bracketed IPv6 address), port 1-65535, an application
#: of one or more segments, and the key, with an optional ``?query`` (no ``/`` in it).
URL_PATTERN = (
    r"^[Rr][Tt][Mm][Pp][Ss]?://"
    rf"({_HOST})"
    rf"(?::({_PORT}))?"
    rf"/({_SEGMENT}(?:/{_SEGMENT})*)"
    rf"/({_SEGMENT}(?:\?[^/#\x00-\x20\x7f]*)?)$"
)
_URL = re.compile(URL_PATTERN)


def parse_rtmp_url(text: str) -> RtmpUrl:
    """Parse an ``rtmp://`` or ``rtmps://`` URL with a stream key (:data:`URL_PATTERN`).
    Raises :class:`ValueError` saying what is wrong, without repeating the key."""
    if not isinstance(text, str):
        raise ValueError("the URL must be a string")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"the URL must be at most {MAX_LENGTH} characters")
    match = _URL.fullmatch(text)
    if match is None:
        raise ValueError(_diagnose(text))
    host, port, app, key = match.groups()
    scheme = text[: text.index(":")].lower()
    host = host[1:-1] if host.startswith("[") else host
    return RtmpUrl(scheme, host, int(port) if port else DEFAULT_PORTS[scheme], app, key)


def _diagnose(text: str) -> str:
    """Why ``text`` is not a target URL, in words that do not repeat its key."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in text):
        return "the URL must not contain spaces or control characters"
    match = _SCHEME.match(text)
    if match is None or match.group(1).lower() not in DEFAULT_PORTS:
        return "the URL must start with rtmp:// or rtmps://"
    authority, slash, path = text[match.end() :].partition("/")
    if "@" in authority:
        return "a user name or password in the URL is not supported (put it in the key)"
    host, colon, port = authority.rpartition(":")
    if not colon or (host.startswith("[") and not host.endswith("]")):
        host, colon, port = authority, "", ""
    if not re.fullmatch(_HOST, host):
        return "the URL must name a host (a name, an address, or [IPv6]): rtmp://host/app/key"
    if colon and not re.fullmatch(_PORT, port):
        return "the URL's port must be a number from 1 to 65535"
    app, _, key = path.rpartition("/")
    if not slash or not app:
        return "the URL must name an application and a stream key: rtmp://host/app/key"
    if not key or key.startswith("?"):
        return "the URL must end with a stream key: rtmp://host/app/key"
    return "the URL must look like rtmp://host[:port]/app/key"


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
