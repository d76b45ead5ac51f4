"""`GET /dashboard`: the operations page (static/dashboard.html, dashboard-view.js,
dashboard.js, dashboard.css).

The page is served without auth because it holds no data. Everything it
shows comes from `/api/v1/*` calls (stats, the activity reading, the message
list, a message and its events, retry, cancel) that carry the API key the
page asks for once, so the data stays behind the same auth as the API.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH = "/dashboard/static"

# Everything the page loads is Postline's own: no CDN, no inline script, so a
# message field that slipped into the DOM as HTML still could not run.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(tags=["dashboard"])


@functools.cache
def _page() -> bytes:
    return (STATIC_DIR / "dashboard.html").read_bytes()


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> Response:
    return Response(
        _page(),
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )
