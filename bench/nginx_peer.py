"""nginx with the RTMP module (Debian's ``nginx`` + ``libnginx-mod-rtmp``) as a peer to
measure against: one process (no master, no daemon), a temp prefix, one ``live`` app."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Where Debian's libnginx-mod-rtmp installs the module.
DEFAULT_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
INSTALL_HINT = "apt-get install -y nginx-light libnginx-mod-rtmp"


class NginxMissing(Exception):
    """nginx or its RTMP module is not installed."""


@dataclass(frozen=True)
class Nginx:
    binary: Path
    module: Path


def find_nginx(binary: str | None = None, module: Path | None = None) -> Nginx:
    """The nginx binary and the RTMP module, or :class:`NginxMissing` saying what is not
    there and how to install it."""
    if binary is not None:
        found = shutil.which(binary)
    else:
        found = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if found is None:
        raise NginxMissing(f"nginx ({binary or 'nginx'}) is not installed ({INSTALL_HINT})")
    module = module or DEFAULT_MODULE
    if not module.is_file():
        raise NginxMissing(f"the nginx RTMP module {module} is missing ({INSTALL_HINT})")
    return Nginx(Path(found), module)


def write_config(
    prefix: Path,
    module: Path,
    port: int,
    *,
    hls: bool,
    chunk_size: int = 4096,
    root: bool,
    record: Path | None = None,
    push: Sequence[str] = (),
) -> Path:
    """An nginx.conf under *prefix*: RTMP on 127.0.0.1:*port*, app ``live``, optional HLS
    (2 s fragments, a 12 s playlist) into ``prefix/hls``; with *record*, every stream
    recorded (``record all``) to ``record/<stream name>.flv``; with *push*, every stream
    pushed to those RTMP application URLs (``push``: the stream name is appended)."""
    hls_lines = ""
    if hls:
        (prefix / "hls").mkdir(exist_ok=True)
        hls_lines = (
            "            hls on;\n"
            f"            hls_path {prefix / 'hls'};\n"
            "            hls_fragment 2s;\n"
            "            hls_playlist_length 12s;\n"
        )
    if record is not None:
        record.mkdir(parents=True, exist_ok=True)
        hls_lines += (
            "            record all;\n"
            f"            record_path {record};\n"
            "            record_unique off;\n"
        )
    for url in push:
        hls_lines += f"            push {url};\n"
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"load_module {module};\n" + ("user root;\n" if root else "") + "daemon off;\n"
        "master_process off;\n"
        "worker_processes 1;\n"
        f"error_log {prefix / 'error.log'};\n"
        f"pid {prefix / 'nginx.pid'};\n"
        "events {}\n"
        "rtmp {\n"
        "    server {\n"
        f"        listen 127.0.0.1:{port};\n"
        f"        chunk_size {chunk_size};\n"
        "        application live {\n"
        "            live on;\n"
        f"{hls_lines}"
        "        }\n"
        "    }\n"
        "}\n"
    )
    return conf


def command(nginx: Nginx, prefix: Path, conf: Path) -> list[str]:
    """The command line that runs it in the foreground."""
    return [str(nginx.binary), "-p", f"{prefix}/", "-e", str(prefix / "error.log"), "-c", str(conf)]
