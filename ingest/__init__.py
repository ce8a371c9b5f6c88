"""rtmp-ingest: the RTMP side of the server (protocol core, FLV payloads, asyncio listener)."""

__version__ = "0.1.0"
