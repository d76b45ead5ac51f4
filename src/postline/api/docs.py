"""`/docs` (Swagger UI) and `/redoc` (ReDoc), served from Postline's own files.

FastAPI's default pages load their script, style, fonts and favicon from
CDNs, so on a closed network (where a self-hosted service often runs) they
are blank. The bundles here come from the `fastapi-offline` wheel, pinned in
uv.lock like any dependency, and are served under `/docs/static`: the pages
reference no other host. A Content-Security-Policy holds the browser to
that (ReDoc's sidebar would otherwise fetch its vendor's logo from a CDN),
and allows the one inline script, Swagger UI's set-up, by its hash.
Neither page holds data, so neither needs a key; the document they render
is `/openapi.json`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

STATIC_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
STATIC_PATH = "/docs/static"
SWAGGER_PATH = "/docs"
REDOC_PATH = "/redoc"

# Swagger UI's online validator would send the document to another host.
SWAGGER_PARAMETERS = {"validatorUrl": None}
# Both UIs set inline styles; ReDoc runs its search in a worker made from a blob.
CSP = (
    "default-src 'none'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def guarded(page: HTMLResponse) -> HTMLResponse:
    """`page` with a policy that lets it load from its own origin only."""
    inline = _INLINE_SCRIPT.findall(bytes(page.body).decode())
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in inline
    )
    page.headers["Content-Security-Policy"] = CSP.format(scripts=hashes)
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


def install(app: FastAPI) -> None:
    """Adds the two pages and their files to `app` (built with docs_url=None, redoc_url=None)."""
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="docs-static")

    def urls(request: Request) -> tuple[str, str]:
        """The document's URL and the files' folder, behind any proxy prefix."""
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return f"{root}{app.openapi_url}", f"{root}{STATIC_PATH}"

    @app.get(SWAGGER_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        document, files = urls(request)
        page = get_swagger_ui_html(
            openapi_url=document,
            title=f"{app.title} API",
            swagger_js_url=f"{files}/swagger-ui-bundle.js",
            swagger_css_url=f"{files}/swagger-ui.css",
            swagger_favicon_url=f"{files}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )
        return guarded(page)

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        document, files = urls(request)
        page = get_redoc_html(
            openapi_url=document,
            title=f"{app.title} API",
            redoc_js_url=f"{files}/redoc.standalone.js",
            redoc_favicon_url=f"{files}/favicon.png",
            with_google_fonts=False,
        )
        return guarded(page)
