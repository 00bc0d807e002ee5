"""`build_app(settings)`: the whole Starlette application, configured when it is constructed.

Nothing here reads the environment: the CLI (or `create_app` for `uvicorn --factory`) reads
`Settings` once and passes them in. The app's parts are on `app.state` for the routes and
for other layers that extend it:

- `app.state.settings`, `app.state.pipeline` (the engine pool; started and closed by the lifespan)
- `app.state.readiness_checks` — register backend checks with `.add(name, async_check)`
- `app.state.api_keys` — the `ApiKeyStore`
- `app.state.cache` — the result cache (`cache.py`); `app.state.jobs` — the `JobRuntime` (`http/jobs.py`)

Middleware, outermost first: request context (request id, access log, HTTP metrics, the
last-resort 500) -> API keys -> Starlette's exception handling (problem+json) -> routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from ocr_service.cache import build_cache
from ocr_service.http import jobs
from ocr_service.http.auth import ApiKeyMiddleware, ApiKeyStore
from ocr_service.http.demo import demo_routes
from ocr_service.http.docs import docs_routes
from ocr_service.http.meta import MetaEndpoints, meta_routes
from ocr_service.http.middleware import RequestContextMiddleware
from ocr_service.http.ocr import ocr_routes
from ocr_service.http.openapi import openapi_document
from ocr_service.http.preview import preview_routes
from ocr_service.http.problems import EXCEPTION_HANDLERS
from ocr_service.http.readiness import ReadinessChecks, cached
from ocr_service.logs import configure_logging
from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings

SELF_TEST_CACHE_SECONDS = 10.0
"""How long a passed (or failed) engine self-test answers readiness probes without re-running."""

LifespanPart = Callable[[Starlette], AbstractAsyncContextManager[None]]
"""Something to start with the app and stop with it; parts start in order and stop in reverse."""


@asynccontextmanager
async def pipeline_lifespan(app: Starlette) -> AsyncIterator[None]:
    """Warm the engine pool before serving; after the server drained in-flight requests, close it."""
    pipeline: OcrPipeline = app.state.pipeline
    await pipeline.start()
    try:
        yield
    finally:
        await pipeline.aclose()


LIFESPAN_PARTS: list[LifespanPart] = [pipeline_lifespan, jobs.jobs_lifespan]
"""Append further parts (e.g. job workers) here; they start after the pipeline and stop before it."""


def build_app(settings: Settings, *, pipeline: OcrPipeline | None = None) -> Starlette:
    """The application for `settings`. `pipeline` is built from the settings unless given."""
    pipeline = pipeline or OcrPipeline(settings)
    api_keys = ApiKeyStore(settings)
    checks = ReadinessChecks()
    register_service_checks(checks, settings, pipeline)
    openapi = openapi_document(settings, auth_enabled=api_keys.configured, extra_paths=jobs.openapi_paths)
    meta = MetaEndpoints(settings, pipeline, checks, openapi)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for part in LIFESPAN_PARTS:
                await stack.enter_async_context(part(app))
            yield

    app = Starlette(
        routes=[
            *ocr_routes(settings, pipeline),
            *preview_routes(settings),
            *jobs.routes,
            *meta_routes(meta),
            *docs_routes(),
            *demo_routes(),
        ],
        middleware=[
            Middleware(RequestContextMiddleware),
            Middleware(ApiKeyMiddleware, store=api_keys),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.readiness_checks = checks
    app.state.api_keys = api_keys
    app.state.cache = build_cache(settings)
    return app


def register_service_checks(checks: ReadinessChecks, settings: Settings, pipeline: OcrPipeline) -> None:
    """Readiness of the service itself: the engine recognises, and the configured languages exist."""

    async def engine() -> None:
        await pipeline.self_test()

    async def languages() -> None:
        wanted = {lang.replace("-", "_") for lang in settings.languages}
        missing = sorted(wanted - set(pipeline.installed_languages()))
        if missing:
            raise RuntimeError(f"configured languages not installed: {', '.join(missing)}")

    checks.add("engine", cached(engine, SELF_TEST_CACHE_SECONDS))
    checks.add("languages", languages)


def create_app() -> Starlette:
    """For `uvicorn --factory ocr_service.app:create_app`: settings and logging from the environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return build_app(settings)
