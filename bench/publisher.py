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
``error``, and with ``--probe`` the lag figures below), and this process's CPU and wall
time for the whole run.

``--speed F`` sends F times faster than real time (a recording pushed without pacing, or
a clip scaled to a bitrate). ``--probe`` measures how far the server's reading trails
real time: a ping (User Control Ping Request) follows each second of media and one the
last message; the server answers a ping once it has parsed every byte before it, so an
answer's time less the due time of the media before the ping is the lag then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.media import FlvTag, read_flv_tags
from ingest.rtmp import ClientConnection
from ingest.rtmp import messages as m
from ingest.rtmp.chunks import Message
from ingest.rtmp.events import NEED_DATA, ConnectionTerminated, PublishStarted, StatusReceived

#: Seconds a probe's answer is waited for after the last message.
PROBE_TIMEOUT = 120.0


@dataclass
class StreamResult:
    key_index: int
    accept_latency: float | None = None
    bytes_sent: int = 0
    messages: int = 0
    #: 1 when the server closed the connection before the stream ended (0 otherwise).
    disconnects: int = 0
    error: str | None = None
    #: With probes: seconds the server's reading trailed real time at the end (the last
    #: message's due time to the answer of the ping after it), and the most at any probe.
    lag_end: float | None = None
    lag_max: float | None = None
    #: With probes: the lag at each probe, in order.
    lags: list[float] = field(default_factory=list)
    #: With probes: Mb/s the publisher offered (bytes sent over the span from the first
    #: message's due time to the last's) and Mb/s the server took in (the same bytes over
    #: the span from the first message's due time to the answer of the last ping).
    offered_mbps: float | None = None
    achieved_mbps: float | None = None


class ProbingClient(ClientConnection):
    """A client that notes when each of its pings is answered."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Ping value -> the monotonic time its answer was parsed.
        self.answered: dict[int, float] = {}
        self._next_ping = 1

    def ping(self) -> int:
        """Queue a Ping Request; returns its value."""
        value = self._next_ping
        self._next_ping += 1
        self._out.append(
            self.writer.write(
                m.CSID_CONTROL, m.USER_CONTROL, 0, 0, m.user_control(m.PING_REQUEST, value)
            )
        )
        return value

    def _handle_control(self, msg: Message) -> None:
        payload = msg.payload
        if (
            msg.type_id == m.USER_CONTROL
            and len(payload) >= 6
            and int.from_bytes(payload[:2], "big") == m.PING_RESPONSE
        ):
            self.answered.setdefault(int.from_bytes(payload[2:6], "big"), time.monotonic())
        super()._handle_control(msg)


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
    speed: float = 1.0,
    probe: bool = False,
) -> None:
    host, port, app_name, tc_url = split_url(url, app)
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        result.error = f"connect: {exc}"
        return
    conn = ProbingClient(app=app_name, stream_name=key, tc_url=tc_url, chunk_size=chunk_size)
    closed_by_server = asyncio.Event()
    #: (ping value, the due time of the media sent before it)
    probes: list[tuple[int, float]] = []

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
        media = [t for t in tags if t.tag_type in (m.AUDIO, m.VIDEO)]
        span = media[-1].timestamp - media[0].timestamp + 33
        base = time.monotonic()
        first = media[0].timestamp
        offset = 0
        due = base
        next_probe = base + 1.0
        while time.monotonic() - base < seconds:
            for tag in media:
                ts = tag.timestamp + offset
                due = base + (ts - first) / 1000 / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() - base >= seconds or closed_by_server.is_set():
                    break
                if tag.tag_type == m.VIDEO:
                    conn.send_video(ts, tag.body)
                else:
                    conn.send_audio(ts, tag.body)
                result.messages += 1
                if probe and due >= next_probe:
                    probes.append((conn.ping(), due))
                    next_probe += 1.0
                writer.write(conn.data_to_send())
                await writer.drain()
            if closed_by_server.is_set():
                raise ConnectionError("closed by the server")
            offset += span
        if probe:
            last = conn.ping()
            probes.append((last, due))
            writer.write(conn.data_to_send())
            sent = conn.bytes_sent
            if due > base:
                result.offered_mbps = sent * 8 / (due - base) / 1e6
            await writer.drain()
            async with asyncio.timeout(PROBE_TIMEOUT):
                while last not in conn.answered and not closed_by_server.is_set():
                    await asyncio.sleep(0.005)
            lags = [round(conn.answered[v] - at, 4) for v, at in probes if v in conn.answered]
            result.lags = lags
            if last in conn.answered:
                result.lag_end = lags[-1]
                result.achieved_mbps = sent * 8 / (conn.answered[last] - base) / 1e6
            result.lag_max = max(lags, default=None)
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
    speed: float = 1.0,
    probe: bool = False,
) -> list[StreamResult]:
    tags = read_flv_tags(clip)
    results = [StreamResult(i) for i in range(len(keys))]
    tasks = []
    for i, key in enumerate(keys):
        job = publish(
            url,
            key,
            tags,
            seconds,
            results[i],
            app=app,
            chunk_size=chunk_size,
            speed=speed,
            probe=probe,
        )
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
    parser.add_argument(
        "--speed", type=float, default=1.0, help="send this many times faster than real time"
    )
    parser.add_argument(
        "--probe", action="store_true", help="measure the server's lag behind real time"
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
            speed=args.speed,
            probe=args.probe,
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
