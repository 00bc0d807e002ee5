"""`GET /demo`: a page to try the service on, served from package data (no CDN, no build step).

The files are plain HTML/CSS/JS in `static/demo/`; the page talks only to this service's own
API (`/v1/languages`, `/v1/preview`, `/v1/ocr`, `/v1/jobs`), by URLs relative to itself so a
path prefix added by an ingress keeps working, which is what lets it work offline and under the
NetworkPolicy. The Content-Security-Policy allows nothing but 'self': no inline script or style,
no other origin, no frames. The page image is drawn on a canvas from a fetched PNG, so not even
`blob:` images are needed.

The HTML and its assets are open without an API key (like `/docs`): the page has to load before
it can ask for a key. Every API call it makes carries the key (see auth.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

DEMO_DIR = Path(__file__).parent / "static" / "demo"
DEMO_PATH = "/demo"
DEMO_ASSETS_PATH = "/demo/assets"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def demo_page(request: Request) -> Response:
    return FileResponse(DEMO_DIR / "index.html", media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


class _DemoAssets(StaticFiles):
    """The page's scripts and styles, with the page's headers (nosniff matters most for scripts)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def demo_routes() -> list[BaseRoute]:
    return [
        Route(DEMO_PATH, demo_page, methods=["GET"]),
        Mount(DEMO_ASSETS_PATH, app=_DemoAssets(directory=DEMO_DIR), name="demo-assets"),
    ]


def demo_operation() -> dict[str, Any]:
    """The OpenAPI operation of `GET /demo` (open without a key, like `/docs`)."""
    return {
        "operationId": "demo",
        "summary": "Demo page: try recognition in a browser (served locally, no CDN)",
        "tags": ["meta"],
        "responses": {"200": {"description": "HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
    }
