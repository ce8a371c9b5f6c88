"""nginx-rtmp (Debian's nginx-light and libnginx-mod-rtmp) as a real RTMP server for
tests: one process on a free loopback port, recording every stream (``record all``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

from bench import nginx_peer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NginxRtmp:
    """``await start()`` runs it, ``kill()`` ends it with SIGKILL, ``await start()`` again
    brings it back on the same port; recordings go to :attr:`records`."""

    def __init__(self, prefix: Path) -> None:
        found = nginx_peer.find_nginx()  # NginxMissing says what to install
        self.prefix = prefix
        self.records = prefix / "records"
        self.port = free_port()
        prefix.mkdir(parents=True, exist_ok=True)
        self.conf = nginx_peer.write_config(
            prefix, found.module, self.port, hls=False, root=os.geteuid() == 0,
            record=self.records,
        )  # fmt: skip
        self.command = nginx_peer.command(found, prefix, self.conf)
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live"

    def record(self, name: str) -> Path:
        return self.records / f"{name}.flv"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(15):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    if self.proc.returncode is not None:
                        log = (self.prefix / "error.log").read_text(errors="replace")
                        raise RuntimeError(f"nginx exited: {log[-2000:]}") from None
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                return

    async def settled(self, name: str, quiet: float = 0.3) -> None:
        """Wait until ``name``'s recording has stopped growing for ``quiet`` seconds."""
        path = self.record(name)
        async with asyncio.timeout(15):
            size = -1
            while not path.exists() or path.stat().st_size != size or size == 0:
                size = path.stat().st_size if path.exists() else -1
                await asyncio.sleep(quiet)

    def pause(self) -> None:
        """SIGSTOP: it keeps accepting TCP (the kernel does) and reads nothing."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """Stop gracefully (SIGQUIT: nginx finishes its recordings)."""
        if self.proc is not None and self.proc.returncode is None:
            self.resume()
            self.proc.send_signal(signal.SIGQUIT)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        elif self.proc is not None:
            await self.proc.wait()
