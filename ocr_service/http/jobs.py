"""Routes of the asynchronous jobs API (owned by the jobs work; mounted by `app.build_app`)."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []

openapi_paths: dict[str, Any] = {}
"""OpenAPI 3.1 path items of the routes above; `build_app` merges them into `/openapi.json`."""
