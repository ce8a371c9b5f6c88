"""Publish N concurrent RTMP streams from one FLV file at real-time pace.

Uses the core's client role over asyncio sockets: each stream connects, publishes, and
sends the file's audio/video tags when their timestamps come due (looping the file, with
timestamps carried on, until ``--seconds`` have passed), then unpublishes.

    python -m bench.publisher --url rtmp://127.0.0.1:1935/live --seconds 30 clip.flv < keys.txt

Stream keys are read from standard input, one per line (never from the command line,
where other users could see them). The URL is the application's (``rtmp://HOST:PORT/APP``,
as OBS's "Server" field); its path is the app name sent in ``connect`` and the URL itself
the ``tcUrl``, so any RTMP server (nginx-rtmp included) sees a consistent publish.

Prints one JSON object: ``{"streams": [...], "cpu_seconds": x, "wall_seconds": y}``, one
entry per key (``accept_latency``, ``bytes_sent``, ``messages``, ``disconnects``,
``error``), and this process's CPU and wall time for the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.media import FlvTag, read_flv_tags
from ingest.rtmp import ClientConnection
from ingest.rtmp.events import NEED_DATA, ConnectionTerminated, PublishStarted, StatusReceived


@dataclass
class StreamResult:
    key_index: int
    accept_latency: float | None = None
    bytes_sent: int = 0
    messages: int = 0
    #: 1 when the server closed the connection before the stream ended (0 otherwise).
    disconnects: int = 0
    error: str | None = None


def split_url(url: str, app: str | None = None) -> tuple[str, int, str, str]:
    """``(host, port, app, tc_url)`` of an application URL; *app* overrides its path."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1935
    name = app if app is not None else parts.path.strip("/")
    tc_url = f"{parts.scheme or 'rtmp'}://{parts.netloc}/{name}"
    return host, port, name, tc_url


async def publish(
    url: str,
    key: str,
    tags: list[FlvTag],
    seconds: float,
    result: StreamResult,
    *,
    app: str | None = None,
    chunk_size: int = 4096,
) -> None:
    host, port, app_name, tc_url = split_url(url, app)
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        result.error = f"connect: {exc}"
        return
    conn = ClientConnection(app=app_name, stream_name=key, tc_url=tc_url, chunk_size=chunk_size)
    closed_by_server = asyncio.Event()

    async def pump_until_started() -> None:
        writer.write(conn.data_to_send())
        while True:
            data = await reader.read(65536)
            conn.receive_data(data)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, PublishStarted):
                    return
                if isinstance(event, StatusReceived | ConnectionTerminated):
                    raise ConnectionError(str(event))
            writer.write(conn.data_to_send())
            if not data:
                raise ConnectionError("closed before Publish.Start")

    async def drain_replies() -> None:
        try:
            while data := await reader.read(65536):
                conn.receive_data(data)
                while conn.next_event() is not NEED_DATA:
                    pass
        except OSError:
            pass
        closed_by_server.set()

    try:
        await asyncio.wait_for(pump_until_started(), 10)
        result.accept_latency = time.monotonic() - started
        replies = asyncio.ensure_future(drain_replies())
        media = [t for t in tags if t.tag_type in (8, 9)]
        span = media[-1].timestamp - media[0].timestamp + 33
        base = time.monotonic()
        offset = 0
        while time.monotonic() - base < seconds:
            for tag in media:
                ts = tag.timestamp + offset
                due = base + ts / 1000
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() - base >= seconds or closed_by_server.is_set():
                    break
                if tag.tag_type == 9:
                    conn.send_video(ts, tag.body)
                else:
                    conn.send_audio(ts, tag.body)
                result.messages += 1
                writer.write(conn.data_to_send())
                await writer.drain()
            if closed_by_server.is_set():
                raise ConnectionError("closed by the server")
            offset += span
        conn.unpublish()
        writer.write(conn.data_to_send())
        await writer.drain()
        replies.cancel()
    except (OSError, ConnectionError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        if result.accept_latency is not None:
            result.disconnects = 1
    finally:
        result.bytes_sent = conn.bytes_sent
        writer.close()


async def run(
    url: str,
    keys: list[str],
    clip: Path,
    seconds: float,
    ramp: float,
    *,
    app: str | None = None,
    chunk_size: int = 4096,
) -> list[StreamResult]:
    tags = read_flv_tags(clip)
    results = [StreamResult(i) for i in range(len(keys))]
    tasks = []
    for i, key in enumerate(keys):
        job = publish(url, key, tags, seconds, results[i], app=app, chunk_size=chunk_size)
        tasks.append(asyncio.ensure_future(job))
        if ramp:
            await asyncio.sleep(ramp / len(keys))
    await asyncio.gather(*tasks)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--url", required=True, help="rtmp://host:port/app")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds to start all streams")
    parser.add_argument("--app", help="application name (default: the URL's path)")
    parser.add_argument(
        "--chunk-size", type=int, default=4096, help="outgoing RTMP chunk size, bytes"
    )
    args = parser.parse_args(argv)
    keys = [line.strip() for line in sys.stdin if line.strip()]
    wall = time.monotonic()
    results = asyncio.run(
        run(
            args.url,
            keys,
            args.clip,
            args.seconds,
            args.ramp,
            app=args.app,
            chunk_size=args.chunk_size,
        )
    )
    report = {
        "streams": [asdict(r) for r in results],
        "cpu_seconds": round(time.process_time(), 3),
        "wall_seconds": round(time.monotonic() - wall, 3),
    }
    print(json.dumps(report))
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
