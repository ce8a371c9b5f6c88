"""rtmp-ingest: the RTMP side of the server (protocol core, FLV payloads, asyncio listener),
and the application shell that runs it all (:mod:`ingest.server`)."""

__version__ = "0.1.0"
