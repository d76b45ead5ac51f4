"""`/docs` and `/redoc` work on a closed network: every file they load is Postline's.

The pages are fetched from a running API, then every script, style, icon
and document they reference; all must answer 200, and neither page may
name another host (FastAPI's defaults load from CDNs and Google Fonts) or
let the browser load from one (their Content-Security-Policy).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.support.harness import running_api, settings_for

# src="...", href="...", spec-url="..." attributes, and Swagger UI's `url: '...'`.
REFERENCE = re.compile(r"""(?:\b(?:src|href|spec-url)=|\burl:\s*)["']([^"']+)["']""")
ANY_URL = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)
KINDS = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "json"}


def references(html: str) -> list[str]:
    return REFERENCE.findall(html)


def test_references_are_found_in_both_quotings() -> None:
    page = """<script src="/a.js"></script><redoc spec-url='/b.json'></redoc>
    SwaggerUIBundle({ url: '/openapi.json', })"""
    assert references(page) == ["/a.js", "/b.json", "/openapi.json"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_page_and_everything_it_loads_come_from_postline(
    database_url: str, redis_url: str, page: str
) -> None:
    settings = settings_for(database_url, redis_url, "http://127.0.0.1:9")
    async with running_api(settings) as base, httpx.AsyncClient(base_url=base) as client:
        answer = await client.get(page)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "img-src 'self' data:;" in policy  # no image from another host either
        html = answer.text
        assert not ANY_URL.findall(html), "the page names another host"
        found = references(html)
        assert any(ref.endswith(".js") for ref in found), found
        assert any(ref.endswith("openapi.json") for ref in found), found
        for ref in found:
            url = urljoin(f"{base}{page}", ref)
            assert urlsplit(url).netloc == urlsplit(base).netloc, ref
            asset = await client.get(url)
            assert asset.status_code == 200, ref
            kind = next(k for suffix, k in KINDS.items() if ref.endswith(suffix))
            assert kind in asset.headers["content-type"], (ref, asset.headers["content-type"])
            assert len(asset.content) > 0
