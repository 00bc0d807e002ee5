"""`build_app(settings)`: the whole Starlette application, configured when it is constructed.

`build_worker_app(...)` is the HTTP side of a worker-only replica (`python -m ocr_service.jobs`):
the same probes and `/metrics`, and no API route at all.

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
from starlette.routing import BaseRoute

from ocr_service.cache import build_cache
from ocr_service.contract import EnvVar
from ocr_service.errors import OcrError
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
from ocr_service.jobs.runtime import JobRuntime
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


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Every part of LIFESPAN_PARTS (read when the app starts), started in order and stopped in reverse."""
    async with AsyncExitStack() as stack:
        for part in LIFESPAN_PARTS:
            await stack.enter_async_context(part(app))
        yield


def build_app(settings: Settings, *, pipeline: OcrPipeline | None = None) -> Starlette:
    """The application for `settings`. `pipeline` is built from the settings unless given."""
    pipeline = pipeline or OcrPipeline(settings)
    api_keys = ApiKeyStore(settings)
    checks = ReadinessChecks()
    register_service_checks(checks, settings, pipeline)
    openapi = openapi_document(settings, auth_enabled=api_keys.configured, extra_paths=jobs.openapi_paths)
    meta = MetaEndpoints(settings, pipeline, checks, openapi)
    routes = [
        *ocr_routes(settings, pipeline),
        *preview_routes(settings, pipeline),
        *jobs.routes,
        *meta_routes(meta),
        *docs_routes(),
        *demo_routes(),
    ]
    app = _application(settings, pipeline, checks, routes, [Middleware(ApiKeyMiddleware, store=api_keys)])
    app.state.api_keys = api_keys
    app.state.cache = build_cache(settings)
    return app


PROBE_ROUTE_NAMES = frozenset({"livez", "readyz", "health", "metrics"})
"""What a worker-only replica serves: the kubelet's probes and Prometheus' scrape, nothing a client calls."""


def build_worker_app(settings: Settings, pipeline: OcrPipeline, runtime: JobRuntime) -> Starlette:
    """The HTTP side of a worker-only replica: `/livez`, `/readyz`, `/health` and `/metrics`, no API.

    It has no lifespan: `python -m ocr_service.jobs` starts the pipeline and `runtime` before it
    serves and stops them itself (SIGTERM stops the job workers first, see there). Readiness is the
    API pods' own: the engine self-test, the languages and the job store, so a worker that cannot
    reach PostgreSQL shows it (its pages wait in the store meanwhile).
    """
    checks = ReadinessChecks()
    register_service_checks(checks, settings, pipeline)
    checks.add(runtime.store.backend, runtime.check_store)
    meta = MetaEndpoints(settings, pipeline, checks, openapi={})
    routes = [route for route in meta_routes(meta) if getattr(route, "name", None) in PROBE_ROUTE_NAMES]
    app = _application(settings, pipeline, checks, routes, [], lifespan=None)
    app.state.jobs = runtime
    return app


def _application(
    settings: Settings,
    pipeline: OcrPipeline,
    checks: ReadinessChecks,
    routes: list[BaseRoute],
    inner_middleware: list[Middleware],
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = lifespan,
) -> Starlette:
    """The Starlette app both builders share: request context outermost, problem+json errors, the lifespan."""
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestContextMiddleware), *inner_middleware],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.readiness_checks = checks
    return app


def register_service_checks(checks: ReadinessChecks, settings: Settings, pipeline: OcrPipeline) -> None:
    """Readiness of the service itself: the engine recognises, and the configured and default languages exist."""

    async def engine() -> None:
        await pipeline.self_test()

    async def languages() -> None:
        installed = set(pipeline.installed_languages())
        wanted = {lang.replace("-", "_") for lang in settings.languages}
        missing = sorted(wanted - installed)
        if missing:
            raise RuntimeError(f"configured languages not installed: {', '.join(missing)}")
        # Every request without `lang` uses the default: with it missing, none of them could succeed.
        try:
            pipeline.resolve_lang(settings.default_lang.replace(" ", "+").replace("-", "_"))
        except OcrError as exc:
            raise RuntimeError(f"{EnvVar.DEFAULT_LANG}={settings.default_lang}: {exc.detail}") from None

    checks.add("engine", cached(engine, SELF_TEST_CACHE_SECONDS))
    checks.add("languages", languages)


def create_app() -> Starlette:
    """For `uvicorn --factory ocr_service.app:create_app`: settings and logging from the environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return build_app(settings)
