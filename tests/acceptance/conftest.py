"""Fixtures of the acceptance tier: Postline as subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.stack import Stack


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
