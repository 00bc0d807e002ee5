"""`GET /docs`: Swagger UI over `/openapi.json`, served from package data with no CDN.

The image must work offline (air-gapped clusters), so the renderer's files are vendored in
`static/swagger-ui/` (see the README there for version and licence) and served by
`StaticFiles`; the page itself links only to them, by relative URLs so a path prefix added
by an ingress keeps working.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

SWAGGER_UI_DIR = Path(__file__).parent / "static" / "swagger-ui"
DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Catalyst OCR API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/assets/initializer.js"></script>
</body>
</html>
"""


async def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(_PAGE)


async def docs_slash(request: Request) -> RedirectResponse:
    """`/docs/` -> `/docs`: the page's asset URLs are relative to `/docs`, so it is served at one address.

    The Location is relative (`../docs`), so it also holds behind a proxy that mounts the service under a prefix.
    """
    return RedirectResponse("../docs", status_code=308)


def docs_routes() -> list[BaseRoute]:
    return [
        Route(DOCS_PATH, docs_page, methods=["GET"]),
        Route(DOCS_PATH + "/", docs_slash, methods=["GET"]),
        Mount(ASSETS_PATH, app=StaticFiles(directory=SWAGGER_UI_DIR), name="docs-assets"),
    ]
