"""Errors of the sans-IO RTMP core.

A peer that breaks the protocol never raises out of the core's public methods: the
connection emits a :class:`~ingest.rtmp.events.ConnectionTerminated` event instead.
:class:`RemoteProtocolError` is what the parsing layers raise internally (and what the
parsers raise when used on their own); :class:`LocalProtocolError` is raised at the caller
for misuse of the API (accepting a publish that was never requested, sending after close).
"""


class ProtocolError(Exception):
    """Base class of the core's errors."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol or exceed a limit."""


class LocalProtocolError(ProtocolError):
    """The local caller used the connection in a way its state does not allow."""
