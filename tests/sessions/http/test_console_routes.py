"""The operator console's page and files as served: no token, the right content types,
revalidation with ETags, gzip, HEAD, nothing outside the package; every file the page
and its modules refer to is served; the package ships every file (package data) and the
vendored libraries are what their NOTICE records."""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from sessions.http.routes_console import CONTENT_TYPES, assets
from tests.sessions.http.conftest import AUTH, Api

ROOT = Path(__file__).resolve().parents[3]
CONSOLE = ROOT / "sessions" / "http" / "console"
VENDOR = CONSOLE / "vendor"


async def test_the_page_is_served_at_the_root_without_a_token(api: Api) -> None:
    response = await api.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert '<script type="module" src="console/js/app.js">' in response.text
    # The data still needs the token.
    assert (await api.client.get("/api/status")).status_code == 401
    assert (await api.client.get("/api/status", headers=AUTH)).status_code == 200


def _references(path: str, text: str) -> set[str]:
    """The console files *text* (the file at *path*) loads, as paths under /console/."""
    if path == "index.html":
        found = re.findall(r'(?:href|src)="console/([^"#?]+)"', text)
        return set(found)
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    found = re.findall(r"""(?:from|import)\s+'(\.{1,2}/[^']+)'""", text)
    resolved = set()
    for relative in found:
        parts = folder.split("/") if folder else []
        for part in relative.split("/"):
            if part == "..":
                parts.pop()
            elif part != ".":
                parts.append(part)
        resolved.add("/".join(parts))
    return resolved


async def test_every_file_the_page_loads_is_served_with_its_type(api: Api) -> None:
    index = (await api.client.get("/")).text
    wanted = _references("index.html", index)
    assert {"js/app.js", "console.css", "vendor/uplot/uPlot.min.css", "icon.svg"} <= wanted
    seen: set[str] = set()
    while wanted - seen:
        path = sorted(wanted - seen)[0]
        seen.add(path)
        response = await api.client.get(f"/console/{path}")
        assert response.status_code == 200, path
        suffix = Path(path).suffix
        assert response.headers["content-type"] == CONTENT_TYPES[suffix], path
        if suffix in (".js", ".mjs"):
            wanted |= _references(path, response.text)
    # The modules reach the vendored player and graph.
    assert {"vendor/hls.js/hls.light.min.mjs", "vendor/uplot/uPlot.esm.js"} <= seen


async def test_a_file_is_revalidated_by_its_etag(api: Api) -> None:
    first = await api.client.get("/console/js/app.js")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = await api.client.get("/console/js/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    changed = await api.client.get("/console/js/app.js", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


async def test_text_is_gzipped_for_clients_that_take_it(api: Api) -> None:
    plain = await api.client.get(
        "/console/vendor/hls.js/hls.light.min.mjs", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    raw = await api.client.get(
        "/console/vendor/hls.js/hls.light.min.mjs", headers={"Accept-Encoding": "gzip"}
    )
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    # httpx has decoded it: the same bytes, sent in fewer.
    assert raw.content == plain.content
    assert int(raw.headers["content-length"]) < len(plain.content) // 2
    refused = await api.client.get(
        "/console/js/app.js", headers={"Accept-Encoding": "gzip;q=0, identity"}
    )
    assert "content-encoding" not in refused.headers


async def test_head_answers_as_get_without_the_body(api: Api) -> None:
    get = await api.client.get("/", headers={"Accept-Encoding": "identity"})
    head = await api.client.head("/", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["etag"] == get.headers["etag"]


@pytest.mark.parametrize(
    "path",
    [
        "/console/nothing.js",
        "/console/__init__.py",
        "/console/",
        "/console/js",
        "/console/%2e%2e/routes_console.py",
        "/console/..%2froutes_console.py",
        "/console/vendor/..%2F..%2F..%2Fguard.py",
    ],
)
async def test_only_the_packages_files_are_served(api: Api, path: str) -> None:
    response = await api.client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_other_methods_are_refused_with_the_allowed_ones(api: Api) -> None:
    response = await api.client.post("/", content=b"token=x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    response = await api.client.delete("/console/js/app.js")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_the_console_is_not_part_of_the_api_document(api: Api) -> None:
    document = (await api.client.get("/openapi.json", headers=AUTH)).json()
    assert "/" not in document["paths"]
    assert not [path for path in document["paths"] if path.startswith("/console")]


def test_the_package_ships_every_console_file() -> None:
    """Every file served from the source tree is package data, so ``pip install .``
    (not only an editable install) serves the same console."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["sessions.http.console"]
    served = set(assets())
    files = {
        str(path.relative_to(CONSOLE))
        for path in CONSOLE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.name != "__init__.py"
    }
    assert files == served
    for name in sorted(files):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


def test_the_vendored_files_are_those_their_notice_records() -> None:
    notice = (VENDOR / "NOTICE.txt").read_text()
    recorded = dict(
        (name, digest) for digest, name in re.findall(r"sha256 ([0-9a-f]{64}) (\S+)", notice)
    )
    present = {str(path.relative_to(VENDOR)) for path in VENDOR.rglob("*") if path.is_file()} - {
        "NOTICE.txt"
    }
    assert set(recorded) == present
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert re.search(r"^hls\.js \S+ \(Apache-2\.0\)$", notice, re.M)
    assert re.search(r"^uplot \S+ \(MIT\)$", notice, re.M)
    assert {"hls.js/LICENSE.txt", "uplot/LICENSE.txt"} <= present


def test_gzipped_assets_decompress_to_the_files() -> None:
    for name, asset in assets().items():
        if asset.gzipped is not None:
            assert gzip.decompress(asset.gzipped) == asset.body, name
