"""Small aiohttp servers on loopback that tests stand up themselves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from tests.support.harness import free_port


@contextlib.asynccontextmanager
async def serving_aiohttp(app: web.Application) -> AsyncIterator[str]:
    """Serves `app` on a free loopback port; yields its base URL."""
    port = free_port()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
