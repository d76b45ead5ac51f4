"""`/docs` and `/redoc` render in a browser that can reach nothing but Postline.

Headless Chromium (the `browser` fixture, see conftest.py) loads each page
with every request to another host refused, as on a closed network: the
pages must still show every operation of the document, raise no script
error, and not even try another host (their Content-Security-Policy stops
ReDoc's vendor logo before it is requested).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, ConsoleMessage, Page, Route, expect

from tests.support.harness import running_api, settings_for

UI_TIMEOUT = 15_000  # ms
BLOCKED_IMAGE = 'violates the following Content Security Policy directive: "img-src'


async def offline_page(browser: Browser, base: str) -> tuple[Page, list[str], list[str]]:
    """A page that may load from `base` only; the refused URLs and script errors."""
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    refused: list[str] = []
    problems: list[str] = []
    own = urlsplit(base).netloc

    async def only_postline(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != own:
            refused.append(url)
            await route.abort()
        else:
            await route.continue_()

    await page.route("**/*", only_postline)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        # The policy keeps ReDoc's vendor logo (an <img> from its CDN) out, and
        # Chromium says so; any other error, a blocked script included, counts.
        if message.type == "error" and BLOCKED_IMAGE not in message.text:
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    return page, refused, problems


async def test_docs_and_redoc_render_without_any_other_host(
    database_url: str, redis_url: str, browser: Browser
) -> None:
    settings = settings_for(database_url, redis_url, "http://127.0.0.1:9")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        document = (await client.get("/openapi.json")).json()
        summaries = [op["summary"] for ops in document["paths"].values() for op in ops.values()]

        page, refused, problems = await offline_page(browser, base)
        await page.goto(f"{base}/docs")
        operations = page.locator(".opblock")
        await expect(operations.first).to_be_visible(timeout=UI_TIMEOUT)
        await expect(operations).to_have_count(len(summaries), timeout=UI_TIMEOUT)
        await expect(page.get_by_text("Send a message").first).to_be_visible()
        assert (refused, problems) == ([], [])
        await page.close()

        page, refused, problems = await offline_page(browser, base)
        await page.goto(f"{base}/redoc")
        for summary in ("Send a message", "Send a batch", "Cancel a message"):
            await expect(page.get_by_text(summary).first).to_be_attached(timeout=UI_TIMEOUT)
        assert (refused, problems) == ([], [])
        await page.close()
