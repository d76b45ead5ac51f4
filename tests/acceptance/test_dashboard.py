"""The dashboard in a real browser: headless Chromium driven by Playwright.

API, worker and simulator run in the test's loop (tests/support/harness.py);
the browser talks to them over loopback like any user's browser would. Needs
a Chromium binary (Debian: `apt-get install chromium`, or CHROMIUM_PATH): it
is skipped without one, except under CI, where that is a failure. Any
console error or page error fails a test. Screenshots go to `artifacts/`
(not committed): 1440 px and 420 px wide, the page and the message drawer.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from postline.services import activity
from tests.support.api_calls import send, wait_status
from tests.support.faults import script
from tests.support.harness import (
    receipt_settings,
    receipting_simulator,
    running_api,
    running_worker,
    settings_for,
    wait_for,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
UI_TIMEOUT = 15_000  # ms; the page polls every 1.5 s, a bucket closes every 5 s
API_KEY = "dashboard-test-key"
SMS = {"from": "+15551234567", "type": "sms", "body": "Your booking is confirmed"}
EMAIL = {"from": "Shop <shop@example.com>", "to": "ana@example.org", "type": "email",
         "subject": "Receipt for booking 4711", "body": "Thanks for your booking.",
         "metadata": {"booking": 4711, "source": "checkout"}}  # fmt: skip
INVALID = {"status": 400, "code": 21211, "message": "Invalid 'To' Phone Number"}
WIDE, NARROW = 1440, 420


async def open_page(
    browser: Browser, url: str, *, width: int = WIDE, allow_401: bool = False, **context: Any
) -> tuple[Page, list[str]]:
    """A page at `url`, and the list its console errors and page errors are collected into."""
    page = await browser.new_page(viewport={"width": width, "height": 900}, **context)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        # Without a key, the first reads are answered 401 by design; nothing else may fail.
        if message.type == "error" and not (allow_401 and "status of 401" in message.text):
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    await page.goto(url)
    return page, problems


async def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def sent_note(count: int) -> str:
    """The note under Sent / s, whole: a count in it cannot be mistaken for one
    ending in the same digits."""
    return f"last {activity.STEP_SECONDS} s · {count} in 10 min"


async def no_sideways_scroll(page: Page) -> None:
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"


async def test_dashboard_asks_for_the_key_then_shows_sends_and_failures(
    browser: Browser, database_url: str, redis_url: str, sim: Any, pool: asyncpg.Pool, redis: Any
) -> None:
    settings = settings_for(database_url, redis_url, sim.base_url, api_keys=API_KEY)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        running_api(settings) as base,
        httpx.AsyncClient(base_url=base, headers=auth) as api,
        running_worker(settings) as worker,
    ):
        page, problems = await open_page(browser, f"{base}/dashboard", allow_401=True)
        # API_KEYS is set: the page shows nothing until it is given a key.
        await expect(page.locator("#auth-form")).to_be_visible(timeout=UI_TIMEOUT)
        await expect(page.locator("#main")).to_be_hidden()
        await shot(page, "dashboard-key.png", full_page=False)
        await page.fill("#auth-key", "not-the-key")
        await page.click("#auth-form button[type=submit]")
        await expect(page.locator("#auth-error")).to_have_text("That key was refused.")
        await page.fill("#auth-key", API_KEY)
        await page.click("#auth-form button[type=submit]")
        await expect(page.locator("#conn")).to_have_attribute(
            "data-state", "live", timeout=UI_TIMEOUT
        )
        await expect(page.locator("#workers")).to_contain_text(worker.name, timeout=UI_TIMEOUT)

        sent_id = await send(api, {**SMS, "to": "+15559870001"})
        await wait_status(api, sent_id, "sent")
        await expect(page.locator("#statuses [data-status=sent] .count")).to_have_text(
            "1", timeout=UI_TIMEOUT
        )
        # The server's series, not the page's memory: the send is in the last 10 minutes.
        await expect(page.locator("#kpi-sent-note")).to_have_text(sent_note(1), timeout=UI_TIMEOUT)

        await script(sim.base_url, {"+15550000099": [INVALID]})
        failed_id = await send(api, {**SMS, "to": "+15550000099"})
        await wait_status(api, failed_id, "failed")
        row = page.locator(f"#failures tr[data-id='{failed_id}']")
        await expect(row).to_contain_text("21211: Invalid 'To' Phone Number", timeout=UI_TIMEOUT)
        await expect(page.locator("#kpi-dead")).to_have_text("1", timeout=UI_TIMEOUT)

        # Search by recipient: one match, so its timeline opens.
        await page.fill("#search-q", "+15559870001")
        await page.click("#search-form button[type=submit]")
        await expect(page.locator(f"#results tr[data-id='{sent_id}']")).to_be_visible(
            timeout=UI_TIMEOUT
        )
        await expect(page.locator("#drawer")).to_have_attribute("data-id", sent_id)
        steps = page.locator("#timeline li .badge")
        await expect(steps).to_have_text(["pending", "sending", "sent"], timeout=UI_TIMEOUT)

        # A failure row opens its own message, error included.
        await page.click("#drawer-close")
        await row.locator("td").first.click()
        await expect(page.locator("#drawer")).to_have_attribute("data-id", failed_id)
        await expect(page.locator("#timeline")).to_contain_text("21211", timeout=UI_TIMEOUT)

        # Search by id: the one message, its drawer open.
        await page.click("#drawer-close")
        await page.fill("#search-q", sent_id)
        await page.click("#search-form button[type=submit]")
        await expect(page.locator("#drawer")).to_have_attribute("data-id", sent_id)
        await expect(page.locator("#results tbody tr")).to_have_count(1)
        await page.click("#drawer-close")

        # The row's own Retry: the row follows the message to `sent`, not stuck on pending.
        await row.get_by_role("button", name="Retry").click()
        await wait_status(api, failed_id, "sent")
        await expect(row.locator(".badge")).to_have_text("sent", timeout=UI_TIMEOUT)
        await expect(row).to_contain_text("retried")
        await expect(page.locator("#kpi-dead")).to_have_text("0", timeout=UI_TIMEOUT)
        await expect(row).to_have_count(0, timeout=UI_TIMEOUT)  # settled: it leaves the list
        await expect(page.locator("#failures-empty")).to_be_visible()
        assert problems == []


async def test_dashboard_explains_and_acts_at_1440_and_420_px(
    browser: Browser, database_url: str, redis_url: str, pool: asyncpg.Pool, redis: Any
) -> None:
    """Rates and providers from the server, failed beside undelivered, the drawer's
    Retry and Cancel changing real messages, times with their zone, a phone's width."""
    async with receipting_simulator() as sim:
        settings = receipt_settings(database_url, redis_url, sim)  # no API_KEYS: no key asked
        async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as api:
            # Receipts go to the API under test: Twilio's to the URL the worker
            # gives with each send, SendGrid's to the one configured.
            sim.config.sendgrid_event_webhook_url = f"{base}/api/v1/webhooks/sendgrid/events"
            worker_settings = settings.model_copy(update={"public_base_url": base})
            async with running_worker(worker_settings):
                await explain_and_act(browser, base, api, sim)


async def explain_and_act(browser: Browser, base: str, api: httpx.AsyncClient, sim: Any) -> None:
    await script(
        sim.base_url,
        {
            "+15550000098": [INVALID],  # fails once: the retry then goes through
            "+15550000097": [{"status": 201, "receipt": "undelivered"}],
            "+15550000096": [503],  # one transient error, then sent
        },
    )
    failed_id = await send(api, {**SMS, "to": "+15550000098"})
    undelivered_id = await send(api, {**SMS, "to": "+15550000097"})
    retried_id = await send(api, {**SMS, "to": "+15550000096"})
    email_id = await send(api, EMAIL)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled_id = await send(api, {**SMS, "to": "+15559870002", "send_at": later})
    await wait_status(api, failed_id, "failed")
    await wait_status(api, undelivered_id, "undelivered")
    for message_id in (retried_id, email_id):
        await wait_status(api, message_id, "delivered")

    page, problems = await open_page(
        browser, f"{base}/dashboard", timezone_id="Europe/Berlin", locale="en-GB"
    )
    failed_row = page.locator(f"#failures tr[data-id='{failed_id}']")
    undelivered_row = page.locator(f"#failures tr[data-id='{undelivered_id}']")
    await expect(failed_row).to_contain_text("21211", timeout=UI_TIMEOUT)
    await expect(undelivered_row).to_contain_text("undelivered")
    # Only a failed message can be retried (SPEC 3): no button on the undelivered one.
    await expect(undelivered_row.get_by_role("button")).to_have_count(0)
    await expect(page.locator("#kpi-dead")).to_have_text("1")
    # Times carry their zone; the page says which zone it shows.
    await expect(page.locator("#zone")).to_contain_text("Europe/Berlin")
    await expect(failed_row.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d \S+$"))

    # The series come from the server: sends, the transient error, per channel and provider.
    # Three sent: the undelivered one (its receipt came later), the retried one, the email.
    await expect(page.locator("#kpi-sent-note")).to_have_text(sent_note(3), timeout=UI_TIMEOUT)
    twilio = page.locator("#providers tr[data-provider=twilio]")
    await expect(twilio).to_contain_text("50 % (2/4)", timeout=UI_TIMEOUT)
    await expect(twilio.locator("td").nth(3)).to_have_text(re.compile(r"^\d+(\.\d+)? m?s$"))
    await expect(page.locator("#channels tr[data-channel=email] svg.spark")).to_have_count(1)
    # Sending: the routes' circuits, and a suppression made now shows within a poll.
    await expect(page.locator("#routes tr[data-route=twilio]")).to_contain_text("closed")
    await expect(page.locator("#paced-empty")).to_be_visible()
    await expect(page.locator("#suppressed-empty")).to_be_visible()
    made = await api.post(
        "/api/v1/suppressions", json={"channel": "email", "recipient": "spam@example.org"}
    )
    assert made.status_code == 201
    await expect(page.locator("#suppressed tbody tr")).to_have_text(["manual1"], timeout=UI_TIMEOUT)
    await expect(page.locator("#suppressed-total")).to_have_text("1 · email 1")
    await check_y_axis(page)
    await no_sideways_scroll(page)
    await shot(page, "dashboard-1440.png")

    # The drawer: body, subject, metadata, provider ids.
    await page.fill("#search-q", email_id)
    await page.click("#search-form button[type=submit]")
    await expect(page.locator("#drawer")).to_have_attribute("data-id", email_id)
    content = page.locator("#content")
    await expect(content).to_contain_text(EMAIL["subject"], timeout=UI_TIMEOUT)
    await expect(content).to_contain_text(EMAIL["body"])
    await expect(content).to_contain_text('"booking": 4711')
    provider_id = (await api.get(f"/api/v1/messages/{email_id}")).json()["provider_message_id"]
    await expect(page.locator("#detail")).to_contain_text(provider_id)
    await expect(page.locator("#drawer-retry")).to_be_disabled()
    await expect(page.locator("#drawer-cancel")).to_be_disabled()
    await shot(page, "dashboard-1440-drawer.png", full_page=False)

    # Retry in the drawer re-sends the failed message; the row follows it to delivered.
    await failed_row.locator("td").first.click()
    await expect(page.locator("#drawer")).to_have_attribute("data-id", failed_id)
    await expect(page.locator("#drawer-retry")).to_be_enabled(timeout=UI_TIMEOUT)
    await page.click("#drawer-retry")
    await wait_status(api, failed_id, "delivered")
    await expect(page.locator("#detail .badge")).to_have_text("delivered", timeout=UI_TIMEOUT)
    await expect(failed_row.locator(".badge")).to_have_text("delivered", timeout=UI_TIMEOUT)
    await expect(page.locator("#kpi-dead")).to_have_text("0", timeout=UI_TIMEOUT)
    await expect(failed_row).to_have_count(0, timeout=UI_TIMEOUT)  # it settled: it leaves
    await expect(undelivered_row).to_be_visible()

    # Cancel asks for a second click, then cancels the scheduled message.
    await page.click("#drawer-close")
    await page.fill("#search-q", scheduled_id)
    await page.click("#search-form button[type=submit]")
    await expect(page.locator("#drawer")).to_have_attribute("data-id", scheduled_id)
    await expect(page.locator("#drawer-cancel")).to_be_enabled(timeout=UI_TIMEOUT)
    await page.click("#drawer-cancel")
    await expect(page.locator("#drawer-cancel")).to_have_text("Click again to cancel")
    await page.click("#drawer-cancel")
    await wait_status(api, scheduled_id, "cancelled")
    await expect(page.locator("#detail .badge")).to_have_text("cancelled", timeout=UI_TIMEOUT)
    await expect(page.locator("#drawer-cancel")).to_be_disabled()
    await page.click("#drawer-close")

    # A reload keeps the history: it lives on the server. The three sends and
    # the failed one that the drawer's Retry sent; nothing was sent since.
    await page.reload()
    await expect(page.locator("#kpi-sent-note")).to_have_text(sent_note(4), timeout=UI_TIMEOUT)

    # A phone's width: nothing cut off, nothing scrolls sideways.
    await page.set_viewport_size({"width": NARROW, "height": 900})
    await expect(undelivered_row).to_be_visible()
    await no_sideways_scroll(page)  # at once: before the chart is redrawn for the width
    await expect(page.locator("#chart svg")).to_have_attribute(
        "width", re.compile(r"^[1-3]?\d{1,2}$"), timeout=UI_TIMEOUT
    )  # then redrawn to fit: under 400 px
    error_cell = undelivered_row.locator("td[data-label=Error]")
    box = await error_cell.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW
    await shot(page, "dashboard-420.png")
    await undelivered_row.locator("td").first.click()
    await expect(page.locator("#drawer")).to_have_attribute("data-id", undelivered_id)
    await expect(page.locator("#timeline .badge").last).to_have_text(
        "undelivered", timeout=UI_TIMEOUT
    )
    await no_sideways_scroll(page)
    await shot(page, "dashboard-420-drawer.png", full_page=False)
    assert problems == []


async def check_y_axis(page: Page) -> None:
    """The rate axis counts up in equal steps from 0: no value skipped."""

    async def labels() -> list[float] | None:
        found = await page.locator("#chart .axis-y").all_text_contents()
        return [float(v) for v in found] if found else None

    values: list[float] = await wait_for(labels, timeout=15, what="the chart's axis")
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    assert values[0] == 0 and len(values) >= 2 and len(steps) == 1, values
