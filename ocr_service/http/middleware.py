"""The outermost layer of every request: request id, access log, HTTP metrics, last-resort 500.

It is plain ASGI (no `BaseHTTPMiddleware`) so streaming bodies pass through untouched. The
route label comes from the route Starlette matched (`scope["route"]`), so metrics and logs
carry templates such as `/v1/jobs/{job_id}` and never raw paths. Anything that escapes the
routes' own error handling is logged with its traceback and answered with a 500 problem;
the tests drive bad input of every kind and prove that never happens.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocr_service import metrics
from ocr_service.contract import HEALTH_PATH, LIVENESS_PATH, METRICS_PATH, READINESS_PATH
from ocr_service.http.problems import internal_error_response
from ocr_service.logs import REQUEST_ID, log_without_caller

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")

QUIET_ROUTES = frozenset({LIVENESS_PATH, READINESS_PATH, HEALTH_PATH, METRICS_PATH})
"""Polled every few seconds by the kubelet and Prometheus: their successes are logged at debug level only."""
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

access_logger = logging.getLogger("catalyst_ocr.access")
error_logger = logging.getLogger("catalyst_ocr.errors")


def request_id_from(headers: Headers) -> str:
    """The client's `X-Request-ID` when it is a sane token, else a fresh random one."""
    given = headers.get(REQUEST_ID_HEADER, "").strip()
    return given if _VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template, or one fixed label for unmatched paths."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else metrics.UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            error_logger.exception("unhandled error", extra={"method": scope["method"], "path": scope["path"]})
            if not response_started:
                await internal_error_response(scope["path"])(scope, receive, send_with_request_id)
            status = 500
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            requests, duration = metrics.http_request_series(route, method, status)
            requests.inc()
            duration.observe(elapsed)
            level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
            log_without_caller(
                access_logger,
                level,
                "%s %s %d",
                (method, route, status),
                {"method": method, "route": route, "status": status, "duration_ms": round(elapsed * 1000, 2)},
            )
            REQUEST_ID.reset(token)
