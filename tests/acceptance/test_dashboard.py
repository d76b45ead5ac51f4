"""The dashboard in a real browser: headless Chromium driven by Playwright.

API, worker and simulator run in the test's loop (tests/support/harness.py);
the browser talks to them over loopback like any user's browser would. Needs
a Chromium binary (Debian: `apt-get install chromium`, or CHROMIUM_PATH): it
is skipped without one, except under CI, where that is a failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests.support.harness import (
    running_api,
    running_worker,
    settings_for,
    wait_for,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
UI_TIMEOUT = 15_000  # ms; the page polls every 1.5 s
API_KEY = "dashboard-test-key"
SMS = {"from": "+15551234567", "type": "sms", "body": "Your booking is confirmed"}
INVALID = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}


async def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A page at `url`, and the list its script errors are collected into."""
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        # The first read without a key is answered 401 by design; anything else counts.
        if message.type == "error" and "status of 401" not in message.text:
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    await page.goto(url)
    return page, problems


async def script_failure(sim: Any, to: str) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        answer = await control.post("/_sim/scripts", json={"to": to, "responses": [INVALID]})
        answer.raise_for_status()


async def send(api: httpx.AsyncClient, to: str) -> str:
    answer = await api.post("/api/v1/messages/send", json={**SMS, "to": to})
    assert answer.status_code == 202, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def wait_status(api: httpx.AsyncClient, message_id: str, want: str) -> None:
    async def reached() -> bool:
        return bool((await api.get(f"/api/v1/messages/{message_id}")).json()["status"] == want)

    await wait_for(reached, timeout=15, what=f"{message_id} to be {want}")


async def test_dashboard_shows_sends_failures_and_a_timeline(
    browser: Browser, database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url, api_keys=API_KEY)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        running_api(settings) as base,
        httpx.AsyncClient(base_url=base, headers=auth) as api,
        running_worker(settings) as worker,
    ):
        page, problems = await open_page(browser, f"{base}/dashboard")
        # API_KEYS is set: the page shows nothing until it is given a key.
        await expect(page.locator("#auth-form")).to_be_visible(timeout=UI_TIMEOUT)
        await expect(page.locator("#main")).to_be_hidden()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-key.png"))
        await page.fill("#auth-key", "not-the-key")
        await page.click("#auth-form button[type=submit]")
        await expect(page.locator("#auth-error")).to_have_text("That key was refused.")
        await page.fill("#auth-key", API_KEY)
        await page.click("#auth-form button[type=submit]")
        await expect(page.locator("#conn")).to_have_attribute(
            "data-state", "live", timeout=UI_TIMEOUT
        )
        await expect(page.locator("#workers")).to_contain_text(worker.name, timeout=UI_TIMEOUT)

        sent_id = await send(api, "+15559870001")
        await wait_status(api, sent_id, "sent")
        sent_chip = page.locator("#statuses [data-status=sent] .count")
        await expect(sent_chip).to_have_text("1", timeout=UI_TIMEOUT)
        await expect(page.locator("#kpi-sent")).to_have_text("0.017", timeout=UI_TIMEOUT)  # 1/60

        await script_failure(sim, "+15550000099")
        failed_id = await send(api, "+15550000099")
        await wait_status(api, failed_id, "failed")
        row = page.locator(f"#failures tr[data-id='{failed_id}']")
        await expect(row).to_contain_text("21211: Invalid 'To' Phone Number", timeout=UI_TIMEOUT)
        await expect(page.locator("#kpi-dead")).to_have_text("1", timeout=UI_TIMEOUT)

        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        # Search by recipient: one match, so its timeline opens.
        await page.fill("#search-q", "+15559870001")
        await page.click("#search-form button[type=submit]")
        await expect(page.locator(f"#results tr[data-id='{sent_id}']")).to_be_visible(
            timeout=UI_TIMEOUT
        )
        await expect(page.locator("#drawer")).to_have_attribute("data-id", sent_id)
        steps = page.locator("#timeline li .badge")
        await expect(steps).to_have_text(["pending", "sending", "sent"], timeout=UI_TIMEOUT)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-timeline.png"))

        # A failure row opens its own timeline, error included.
        await row.locator("td").first.click()
        await expect(page.locator("#drawer")).to_have_attribute("data-id", failed_id)
        await expect(page.locator("#timeline")).to_contain_text("21211", timeout=UI_TIMEOUT)

        # Search by id: the one message, its timeline open.
        await page.click("#drawer-close")
        await page.fill("#search-q", sent_id)
        await page.click("#search-form button[type=submit]")
        await expect(page.locator("#drawer")).to_be_visible()
        await expect(page.locator("#drawer")).to_have_attribute("data-id", sent_id)
        await expect(page.locator("#results tbody tr")).to_have_count(1)
        assert problems == []


async def test_retry_button_requeues_a_failed_message(
    browser: Browser, database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url)  # no API_KEYS: no key asked
    async with (
        running_api(settings) as base,
        httpx.AsyncClient(base_url=base) as api,
        running_worker(settings),
    ):
        await script_failure(sim, "+15550000098")  # once: the retry then goes through
        failed_id = await send(api, "+15550000098")
        await wait_status(api, failed_id, "failed")

        page, problems = await open_page(browser, f"{base}/dashboard")
        row = page.locator(f"#failures tr[data-id='{failed_id}']")
        await expect(row).to_be_visible(timeout=UI_TIMEOUT)
        await row.get_by_role("button", name="Retry").click()
        await expect(row).to_contain_text("Re-queued", timeout=UI_TIMEOUT)

        async def left_failed() -> bool:
            answer = await api.get(f"/api/v1/messages/{failed_id}")
            return bool(answer.json()["status"] != "failed")

        await wait_for(left_failed, timeout=10, what="the retried message to leave `failed`")
        await wait_status(api, failed_id, "sent")
        # Once it is no longer failed, it drops out of the list by itself.
        await expect(row).to_have_count(0, timeout=UI_TIMEOUT)
        await expect(page.locator("#failures-empty")).to_be_visible()
        assert problems == []
