"""The operators' HTTP API (FastAPI): streams, sessions, analytics, health."""

from sessions.http.app import create_app
from sessions.http.deps import LiveSessions

__all__ = ["LiveSessions", "create_app"]
