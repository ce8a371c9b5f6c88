"""The served API against its own OpenAPI document, with schemathesis.

Every operation in ``/openapi.json`` gets examples, boundary cases (the coverage phase,
methods the document does not list included) and generated requests, valid and invalid,
with the admin token; every default check must hold: no server error, only documented
status codes, content types, headers and bodies, schema-valid requests accepted and
invalid ones rejected, a correct ``Allow`` on 405, auth not ignored. Examples are few and
the run is derandomized with a fixed seed, so it is quick and the same every time.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case

from tests.sessions.http.conftest import AUTH
from tests.sessions.http.served import serve_api, serve_api_in_thread

#: Generated requests per operation and generation mode (the coverage phase adds its own).
MAX_EXAMPLES = 12
SEED = 1913


@pytest.fixture(scope="module")
def served_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_api_in_thread(Path(tmp_path_factory.mktemp("served"))) as url:
        yield url


async def _served_document() -> dict[str, Any]:
    """``/openapi.json`` as the served API answers it (with the token)."""
    with tempfile.TemporaryDirectory() as folder:
        async with (
            serve_api(Path(folder)) as served,
            httpx.AsyncClient(base_url=served.url, headers=AUTH) as client,
        ):
            response = await client.get("/openapi.json")
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


# The operations must be known when the tests are collected, so the document is fetched
# then, from a server of its own (schemathesis' fixture-based loader does not work with
# the pytest in use).
schema = schemathesis.openapi.from_dict(
    asyncio.run(_served_document()),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": AUTH,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
        }
    ),
)


@schema.parametrize()
def test_every_operation_conforms_to_the_document(case: Case, served_url: str) -> None:
    case.call_and_validate(base_url=served_url, headers=AUTH)
