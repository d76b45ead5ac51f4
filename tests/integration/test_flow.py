"""`postline flow` against the real API, a worker and the simulator, from an
install without the test-only HTTP clients."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.harness import running_worker

# What an install without dev dependencies looks like: `import httpx` fails.
WITHOUT_HTTPX = (
    "import sys; sys.modules['httpx'] = None; "
    "from postline.cli import main; main(sys.argv[1:], prog_name='postline')"
)


async def flow(base_url: str, cwd: Path, *args: str) -> tuple[int, str]:
    """Runs the command in a child process, without blocking the loop that serves the API."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTLINE_", "API_KEYS"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITHOUT_HTTPX, "flow", "--url", base_url, *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_flow_walks_every_channel_without_httpx(
    api: httpx.AsyncClient, settings: Any, tmp_path: Path
) -> None:
    async with running_worker(settings):
        code, out = await flow(str(api.base_url), tmp_path, "--timeout", "20")
    assert code == 0, out
    for channel in ("sms", "mms", "whatsapp", "email"):
        assert f"POST /api/v1/messages/send ({channel}) -> 202 status=pending" in out, out
        assert f"3. {channel}: sent via" in out or f"3. {channel}: delivered via" in out, out
    assert out.count("✓ history: pending -> sending -> sent") == 4, out
    assert "All steps passed" in out
    listed = (await api.get("/api/v1/messages", params={"limit": 10})).json()["items"]
    assert sorted(m["type"] for m in listed) == ["email", "mms", "sms", "whatsapp"]


async def test_flow_says_which_step_failed(api: httpx.AsyncClient, tmp_path: Path) -> None:
    """No worker: the messages stay pending, and the command names that, exiting 1."""
    code, out = await flow(str(api.base_url), tmp_path, "--timeout", "0.5")
    assert code == 1, out
    assert "is still pending after" in out and "is a worker running" in out, out
