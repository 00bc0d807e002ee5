"""Routes about the service itself: languages, info, probes, metrics and the OpenAPI document.

Liveness answers without touching anything (a stuck engine must not get the pod killed in a
loop while readiness already takes it out of the Service). Readiness runs the registry in
`app.state.readiness_checks`. `/metrics` refreshes the pool gauges from the pipeline first.
"""

from __future__ import annotations

import platform
from functools import cache
from importlib import metadata
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ocr_service import __version__, metrics
from ocr_service.contract import HEALTH_PATH, LIVENESS_PATH, METRICS_PATH, READINESS_PATH
from ocr_service.errors import ServiceUnavailable
from ocr_service.http.problems import ProblemResponse
from ocr_service.http.readiness import ReadinessChecks
from ocr_service.options import MEDIA_TYPES, PREPROCESS_STEPS
from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings

OPENAPI_PATH = "/openapi.json"
VERSIONED_DISTRIBUTIONS = (
    "starlette",
    "uvicorn",
    "opencv-python-headless",
    "numpy",
    "pillow",
    "pypdfium2",
    "tesserocr",
)


@cache
def library_versions() -> dict[str, str]:
    """Python and the installed versions of the libraries that shape results (absent ones left out)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class MetaEndpoints:
    def __init__(
        self, settings: Settings, pipeline: OcrPipeline, checks: ReadinessChecks, openapi: dict[str, Any]
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.checks = checks
        self.openapi = openapi

    async def languages(self, request: Request) -> Response:
        return JSONResponse({"languages": self.pipeline.installed_languages(), "default": self.settings.default_lang})

    async def info(self, request: Request) -> Response:
        settings = self.settings
        stats = self.pipeline.stats()
        return JSONResponse(
            {
                "service": {"name": "catalyst-ocr", "version": __version__},
                "engine": self.pipeline.engine_info(),
                "versions": library_versions(),
                "limits": {
                    "max_upload_bytes": settings.max_upload_bytes,
                    "max_pixels": settings.max_pixels,
                    "max_pages": settings.max_pages,
                    "job_max_upload_bytes": settings.job_max_upload_bytes,
                    "job_max_pages": settings.job_max_pages,
                    "max_dpi": settings.max_dpi,
                    "timeout_seconds": settings.timeout_seconds,
                    "workers": stats.workers,
                    "queue_size": stats.queue_capacity,
                },
                "defaults": {
                    "lang": settings.default_lang,
                    "psm": settings.default_psm,
                    "oem": settings.default_oem,
                    "dpi": settings.pdf_dpi,
                    "preprocess": settings.default_preprocess,
                },
                "formats": {fmt.value: media_type for fmt, media_type in MEDIA_TYPES.items()},
                "preprocess_steps": list(PREPROCESS_STEPS),
                "languages": self.pipeline.installed_languages(),
            }
        )

    async def liveness(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readiness(self, request: Request) -> Response:
        results = await self.checks.run_all()
        checks = {result.name: result.to_json() for result in results}
        failing = [result for result in results if not result.ok]
        if not failing:
            return JSONResponse({"status": "ready", "checks": checks})
        detail = "; ".join(f"{result.name}: {result.detail}" for result in failing)
        problem = ServiceUnavailable(f"Not ready: {detail}").to_problem(request.url.path)
        problem["checks"] = checks
        return ProblemResponse(problem, status_code=503)

    async def metrics(self, request: Request) -> Response:
        stats = self.pipeline.stats()
        metrics.refresh_pool_gauges(
            workers=stats.workers, busy=stats.busy, queued=stats.queued, queue_capacity=stats.queue_capacity
        )
        return Response(metrics.exposition(), media_type=metrics.EXPOSITION_MEDIA_TYPE)

    async def openapi_document(self, request: Request) -> Response:
        return JSONResponse(self.openapi)


def meta_routes(endpoints: MetaEndpoints) -> list[BaseRoute]:
    return [
        Route("/v1/languages", endpoints.languages, methods=["GET"], name="languages"),
        Route("/v1/info", endpoints.info, methods=["GET"], name="info"),
        Route(LIVENESS_PATH, endpoints.liveness, methods=["GET"], name="livez"),
        Route(READINESS_PATH, endpoints.readiness, methods=["GET"], name="readyz"),
        Route(HEALTH_PATH, endpoints.readiness, methods=["GET"], name="health"),
        Route(METRICS_PATH, endpoints.metrics, methods=["GET"], name="metrics"),
        Route(OPENAPI_PATH, endpoints.openapi_document, methods=["GET"], name="openapi"),
    ]
