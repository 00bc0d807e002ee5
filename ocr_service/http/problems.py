"""Every error answer is `application/problem+json` (RFC 9457), built here and nowhere else.

Routes and lower layers raise `errors.OcrError`; Starlette's own 404/405 arrive as
`HTTPException`. The handlers below turn both into one problem shape, so clients switch on
`type` whatever went wrong. Anything unexpected is answered by `RequestContextMiddleware`
with `internal_error_response` (and logged there); tests prove no input reaches it.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ocr_service import metrics
from ocr_service.errors import NotFound, OcrError

PROBLEM_MEDIA_TYPE = "application/problem+json"


class MethodNotAllowed(OcrError):
    """The route exists but not for this method; `Allow` lists the ones it takes."""

    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class InternalError(OcrError):
    """A bug on our side. The detail stays generic: internals never reach the client."""

    status, slug, title = 500, "internal-error", "Internal server error"


class ProblemResponse(Response):
    """A response whose body is an RFC 9457 problem document."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def problem_response(error: OcrError, instance: str | None = None) -> ProblemResponse:
    """The problem document for `error`, with the error's status and headers (e.g. `Retry-After`).

    Every error answer passes here, so this is where rejections are counted by reason.
    """
    metrics.REJECTED_REQUESTS.labels(reason=error.slug, status=str(error.status)).inc()
    return ProblemResponse(error.to_problem(instance), status_code=error.status, headers=error.headers)


def internal_error_response(instance: str | None = None) -> ProblemResponse:
    return problem_response(InternalError("The server failed to handle this request; it has been logged."), instance)


async def handle_ocr_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OcrError)
    return problem_response(exc, request.url.path)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (404, 405) in the same problem shape as ours."""
    assert isinstance(exc, HTTPException)
    error: OcrError
    if exc.status_code == 404:
        error = NotFound(f"No route matches {request.url.path}.")
    elif exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        error = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}; use {allow or 'another method'}.",
            headers={"Allow": allow} if allow else None,
        )
    else:
        error = OcrError(str(exc.detail), headers=dict(exc.headers or {}))
        error.status = exc.status_code
    return problem_response(error, request.url.path)


EXCEPTION_HANDLERS = {OcrError: handle_ocr_error, HTTPException: handle_http_exception}
"""Handlers `build_app` installs; keyed by exception class as Starlette expects."""
