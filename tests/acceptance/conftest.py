"""Fixtures of the acceptance tier: Postline as subprocesses, and a real browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.stack import Stack

# Without the background-networking flags Chromium's own connections (updates,
# field trials) are refused on a closed network, and it stalls on them.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def stack(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: Any, tmp_path: Path
) -> Iterator[Stack]:
    """Simulator, API and workers as subprocesses on the test servers (emptied first)."""
    running = Stack(database_url, redis_url, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def chromium_path() -> str | None:
    candidates = [os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), "/usr/bin/chromium"]  # fmt: skip
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail(
                "no Chromium found: CI must run the browser tests (apt-get install chromium)"
            )
        pytest.skip("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
