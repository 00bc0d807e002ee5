"""Routes of the asynchronous jobs API (owned by the jobs work; mounted by `app.build_app`)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
