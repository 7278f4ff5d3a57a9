"""A standby runs no kopf, yet its pod must stay live and ready: it answers the same
liveness endpoint kopf answers once it leads, and frees the port before kopf binds it."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest

from tests.support.stack._stack import free_port
from xlinefed.operators.run import standby_health


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_the_standby_answers_the_liveness_endpoint_and_frees_its_port() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"

    async def main() -> None:
        async with standby_health(url):
            status, body = await asyncio.to_thread(_get, url)
            assert status == 200 and "standby" in body
        with pytest.raises(urllib.error.URLError):
            await asyncio.to_thread(_get, url)

    asyncio.run(main())
