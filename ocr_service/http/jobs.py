"""Routes of the asynchronous jobs API, and the lifespan part that runs the jobs layer.

    POST   /v1/jobs                   same inputs and options as /v1/ocr (+ callback_url) -> 202 + Location
    GET    /v1/jobs/{id}              status, progress, timestamps, error (problem details)
    GET    /v1/jobs/{id}/result       ?format=json|text|hocr|tsv|alto|pdf; 409 until it succeeded
    DELETE /v1/jobs/{id}              cancel a queued or running job
    GET    /v1/jobs/{id}/events       server-sent events until the job reaches a final state

The routes find the replica's `JobRuntime` on `app.state.jobs`, which `jobs_lifespan` creates,
starts after the engine pipeline and stops before it; it also registers the job store's
readiness check. A store outage surfaces as 503 problems on these routes only.

With API keys configured, a job belongs to the key that submitted it: every route passes the
caller's owner id (`auth.caller_owner`) down, another key's job answers 404 like an unknown id,
and an Idempotency-Key is scoped to its owner.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ocr_service.cache import build_cache
from ocr_service.errors import InvalidParameter, ServiceUnavailable, Unauthorized
from ocr_service.http.admission import DocumentAdmission, uploads_refused
from ocr_service.http.auth import WWW_AUTHENTICATE, caller_owner
from ocr_service.http.body import read_document
from ocr_service.http.negotiation import negotiate_format
from ocr_service.http.params import merge_option_sources, parse_format, parse_options
from ocr_service.jobs.changes import PollIntervals
from ocr_service.jobs.errors import StoreUnavailable
from ocr_service.jobs.models import Job
from ocr_service.jobs.runtime import JobRuntime
from ocr_service.options import MEDIA_TYPES, OutputFormat

JOBS_PATH = "/v1/jobs"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
JOB_FIELDS = ("callback_url",)
"""Submission fields that are not recognition options."""
SSE_POLL = PollIntervals(fallback=0.25, live=5.0)
"""How often an event stream re-reads its job without being told to. It is woken by the job
store's change feed for each committed event, so while the feed is live this is only a safety
net; while it is not (PostgreSQL LISTEN reconnecting), streams poll as often as before it existed."""
SSE_KEEPALIVE_SECONDS = 15.0
MAX_EVENT_ID = 2**63 - 1
"""Event ids are int64 in both stores (SQLite INTEGER, PostgreSQL bigint)."""
_EVENT_ID = re.compile(r"^[0-9]{1,19}$")


def _runtime(request: Request) -> JobRuntime:
    runtime: JobRuntime | None = getattr(request.app.state, "jobs", None)
    if runtime is None:
        raise ServiceUnavailable("The jobs API is not running on this replica (starting up or shutting down).")
    return runtime


def _owner(request: Request) -> str | None:
    """The caller's owner id; None with authentication off (then every job is everyone's).

    Fails closed: with keys configured but no owner recorded (the key middleware did not run),
    the request is refused rather than shown every tenant's jobs.
    """
    owner = caller_owner(request.scope)
    keys = getattr(request.app.state, "api_keys", None)
    if owner is None and keys is not None and keys.configured:
        raise Unauthorized("This request carries no checked API key.", headers={"WWW-Authenticate": WWW_AUTHENTICATE})
    return owner


def job_json(job: Job) -> dict[str, Any]:
    """The job's representation, with links to what a client does next."""
    document = job.to_json()
    base = f"{JOBS_PATH}/{job.id}"
    document["links"] = {"self": base, "result": f"{base}/result", "events": f"{base}/events"}
    return document


async def create_job(request: Request) -> Response:
    runtime = _runtime(request)
    owner = _owner(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise InvalidParameter(
            "Idempotency-Key must be 1-255 visible ASCII characters (e.g. a UUID).", param=IDEMPOTENCY_HEADER
        )
    admission: DocumentAdmission = request.app.state.job_admission
    with admission.admit():  # 429 before the body is read: uploads in memory stay bounded
        received = await read_document(
            request, runtime.settings.max_upload_bytes, time_limit=runtime.settings.timeout_seconds
        )
        raw = merge_option_sources(request.query_params.multi_items(), received.options)
        callback = raw.pop("callback_url", None)
        if callback is not None and not isinstance(callback, str):
            raise InvalidParameter("callback_url must be a string.", param="callback_url")
        options = parse_options(raw, runtime.settings, runtime.pipeline.resolve_lang)
        job, created = await runtime.submit(
            received.data,
            options,
            filename=received.filename,
            callback_url=callback or None,
            idempotency_key=key,
            owner=owner,
        )
    headers = {"Location": f"{JOBS_PATH}/{job.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job_json(job), status_code=202 if created else 200, headers=headers)


async def job_resource(request: Request) -> Response:
    runtime = _runtime(request)
    job_id, owner = request.path_params["job_id"], _owner(request)
    job = await (runtime.cancel(job_id, owner) if request.method == "DELETE" else runtime.get(job_id, owner))
    return JSONResponse(job_json(job))


async def job_result(request: Request) -> Response:
    runtime = _runtime(request)
    job_id, owner = request.path_params["job_id"], _owner(request)
    unknown = sorted(set(request.query_params) - {"format"})
    if unknown:
        raise InvalidParameter(f"Unknown parameter {unknown[0]!r}; only `format` is accepted.", param=unknown[0])
    requested = request.query_params.get("format")
    fmt = parse_format(requested) if requested is not None else None  # `?format=` (empty) is a 400, not the default
    if fmt is None:  # then Accept chooses, as on /v1/ocr; absent or */*: the format the job was submitted with
        submitted = (await runtime.get(job_id, owner)).options.format
        fmt = negotiate_format(request.headers.get("accept"), default=submitted)
    job, body, media_type = await runtime.result(job_id, fmt, owner)
    headers = {"X-Cache": "hit" if job.cached else "miss"}
    if fmt is OutputFormat.PDF:
        headers["Content-Disposition"] = f'inline; filename="{job.id}.pdf"'
    return Response(body, media_type=media_type, headers=headers)


async def job_events(request: Request) -> Response:
    """Progress as server-sent events: replays what happened so far, then follows until a final state.

    Each event has `id` (resume with `Last-Event-ID`), `event` (`queued`, `running`, `progress`,
    `retry`, `succeeded`, `failed`, `cancelled`) and JSON `data` with `status`/`pages_done`/`pages_total`.
    The stream waits on the store's change feed for this job (any replica's writes reach it) and
    reads `events_since` when woken, so an idle stream costs no queries between its slow safety polls.
    """
    runtime = _runtime(request)
    job_id = request.path_params["job_id"]
    job = await runtime.get(job_id, _owner(request))  # 404 (unknown or another key's) before the stream starts
    after = last_event_id(request.headers.get("last-event-id"))

    async def stream() -> AsyncIterator[bytes]:
        changes = runtime.store.changes
        clock = asyncio.get_running_loop().time
        last_id = after
        final = job.is_final  # everything it will ever emit is stored already: replay and stop
        with changes.watch(job_id) as changed:  # registered before the first read: no change slips between
            quiet_since = clock()
            while True:
                changed.clear()
                try:
                    events = await runtime.store.events_since(job_id, last_id)
                except StoreUnavailable as exc:
                    yield _sse("error", {"detail": exc.detail}, None)
                    return
                for event in events:
                    last_id = event.id
                    data = {**event.data, "at": event.at.isoformat().replace("+00:00", "Z")}
                    yield _sse(event.kind, data, event.id)
                    if event.kind in ("succeeded", "failed", "cancelled"):
                        return
                if final and not events:
                    return  # a final job whose final event was already sent (or deleted)
                if events:
                    quiet_since = clock()
                    continue
                quiet = clock() - quiet_since
                if quiet >= SSE_KEEPALIVE_SECONDS:
                    quiet_since = clock()
                    yield b": keep-alive\n\n"
                    try:
                        if await runtime.store.get_job(job_id) is None:
                            return  # deleted (retention) while nobody was looking
                    except StoreUnavailable as exc:
                        yield _sse("error", {"detail": exc.detail}, None)
                        return
                    continue
                # Woken by a committed event of this job (or the feed changing state); the poll is the safety net.
                await changed.wait(min(SSE_POLL.now(changes), SSE_KEEPALIVE_SECONDS - quiet))

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def last_event_id(header: str | None) -> int:
    """The id to resume after: 0 without the header, else a decimal event id the store can hold.

    Checked before the stream starts: `-5` or `+1` is no id this stream sent, and a number past
    int64 would only fail in the database once the 200 was sent, breaking the stream mid-way.
    """
    if header is None or header == "":
        return 0
    if not _EVENT_ID.fullmatch(header) or int(header) > MAX_EVENT_ID:
        raise InvalidParameter(
            f"Last-Event-ID must be an event id from this stream (decimal, 0 to {MAX_EVENT_ID}).",
            param="Last-Event-ID",
        )
    return int(header)


def _sse(kind: str, data: dict[str, Any], event_id: int | None) -> bytes:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {kind}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()


@asynccontextmanager
async def jobs_lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start the jobs layer after the pipeline (a lifespan part of `app.build_app`) and stop it before."""
    settings = app.state.settings
    cache = getattr(app.state, "cache", None)
    if cache is None:
        cache = build_cache(settings)
        app.state.cache = cache
    runtime = JobRuntime(settings, app.state.pipeline, cache)
    checks = app.state.readiness_checks
    name = runtime.store.backend
    if name not in checks.names:

        async def job_store_ready() -> None:
            current: JobRuntime | None = getattr(app.state, "jobs", None)
            if current is None:
                raise RuntimeError("the jobs layer is not running")
            await current.check_store()

        checks.add(name, job_store_ready)
    await runtime.start()
    capacity = runtime.pipeline.capacity
    app.state.job_admission = DocumentAdmission(capacity, lambda: uploads_refused(max(1, capacity())))
    app.state.jobs = runtime
    try:
        yield
    finally:
        app.state.jobs = None
        await runtime.stop(settings.shutdown_grace_seconds)
        await cache.close()  # the last user of the cache: /v1/ocr has stopped taking requests


routes: list[BaseRoute] = [
    Route(JOBS_PATH, create_job, methods=["POST"], name="jobs:create"),
    Route(JOBS_PATH + "/{job_id}", job_resource, methods=["GET", "DELETE"], name="jobs:job"),
    Route(JOBS_PATH + "/{job_id}/result", job_result, methods=["GET"], name="jobs:result"),
    Route(JOBS_PATH + "/{job_id}/events", job_events, methods=["GET"], name="jobs:events"),
]


_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_TEXT = {"type": "string"}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM}}}


def _job_schema() -> dict[str, Any]:
    timestamp = {"type": ["string", "null"], "format": "date-time"}
    return {
        "type": "object",
        "required": ["id", "status", "created_at", "pages_total", "pages_done", "links"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "started_at": timestamp,
            "finished_at": timestamp,
            "pages_total": {"type": "integer"},
            "pages_done": {"type": "integer"},
            "cached": {"type": "boolean", "description": "Every page came from the result cache."},
            "cached_pages": {"type": "integer"},
            "filename": {"type": "string"},
            "document_sha256": {"type": "string"},
            "options": {"type": "object"},
            "callback_url": {"type": ["string", "null"]},
            "callback_state": {"type": ["string", "null"], "enum": ["pending", "delivered", "failed", None]},
            "error": {"oneOf": [{"type": "null"}, _PROBLEM], "description": "Why the job failed."},
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }


def _build_openapi_paths() -> dict[str, Any]:
    job = {"application/json": {"schema": _job_schema()}}
    unavailable = _problem("The job store (PostgreSQL) is unreachable; retry after `Retry-After` seconds.")
    not_found = _problem(
        "No such job: unknown, deleted after OCR_JOB_TTL_SECONDS, or created with another API key "
        "(indistinguishable on purpose)."
    )
    formats = [fmt.value for fmt in OutputFormat]
    result_content: dict[str, Any] = {"application/json": {"schema": {"$ref": "#/components/schemas/OcrResult"}}}
    for fmt in OutputFormat:
        if fmt is not OutputFormat.JSON:
            binary = fmt is OutputFormat.PDF
            schema = {"type": "string", "format": "binary"} if binary else {"type": "string"}
            result_content[MEDIA_TYPES[fmt].split(";")[0]] = {"schema": schema}
    return {
        JOBS_PATH: {
            "post": {
                "operationId": "createJob",
                "summary": "Submit a document for asynchronous recognition",
                "description": (
                    "Takes exactly the inputs and options of `POST /v1/ocr` (multipart `file`, raw body, or JSON "
                    "with base64 `content`; options in the query or beside the document), plus `callback_url`: "
                    "a URL on a host in OCR_CALLBACK_ALLOWED_HOSTS that receives a signed POST when the job "
                    "finishes. With an `Idempotency-Key` header, repeating a request returns the same job (200) "
                    "and reusing the key for a different request is a 409. With API keys configured, the job "
                    "belongs to the key that submitted it: other keys get 404 for it, and Idempotency-Keys are "
                    "scoped per API key."
                ),
                "tags": ["jobs"],
                "parameters": [
                    {
                        "name": IDEMPOTENCY_HEADER,
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": _IDEMPOTENCY_KEY.pattern},
                    },
                    {"name": "callback_url", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {"schema": {"type": "object", "required": ["file"]}},
                        "application/json": {"schema": {"type": "object", "required": ["content"]}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "202": {
                        "description": "Accepted; poll `Location` or follow its `events`.",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": job,
                    },
                    "200": {
                        "description": "The job an earlier request with this Idempotency-Key (and API key) created.",
                        "content": job,
                    },
                    "400": _problem("An option, the callback_url or the Idempotency-Key is invalid."),
                    "409": _problem("This API key used the Idempotency-Key for a different request."),
                    "413": _problem("The body, a page's pixels or the page count exceeds a limit."),
                    "415": _problem("The document is not a supported image or PDF."),
                    "422": _problem("The document's data cannot be decoded."),
                    "429": {
                        **_problem(
                            "As many uploads as the pool has slots are being received; retry after `Retry-After`."
                        ),
                        "headers": {
                            "Retry-After": {
                                "description": "Seconds to wait before retrying.",
                                "schema": {"type": "integer"},
                            }
                        },
                    },
                    "503": unavailable,
                },
            }
        },
        JOBS_PATH + "/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A job's status and progress",
                "tags": ["jobs"],
                "parameters": [_JOB_ID],
                "responses": {"200": {"description": "The job.", "content": job}, "404": not_found, "503": unavailable},
            },
            "delete": {
                "operationId": "cancelJob",
                "summary": "Cancel a queued or running job",
                "tags": ["jobs"],
                "parameters": [_JOB_ID],
                "responses": {
                    "200": {"description": "The cancelled job.", "content": job},
                    "404": not_found,
                    "409": _problem("The job already succeeded or failed."),
                    "503": unavailable,
                },
            },
        },
        JOBS_PATH + "/{job_id}/result": {
            "get": {
                "operationId": "getJobResult",
                "summary": "The result of a succeeded job, in any output format",
                "tags": ["jobs"],
                "parameters": [
                    _JOB_ID,
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": formats},
                        "description": "Without it `Accept` chooses, as on /v1/ocr; with neither (or `*/*`), "
                        "the format the job was submitted with.",
                    },
                ],
                "responses": {
                    "200": {"description": "The merged result.", "content": result_content},
                    "400": _problem("Unknown format or parameter."),
                    "404": not_found,
                    "406": _problem("`Accept` admits none of the output formats (and no `format` was given)."),
                    "409": _problem("The job has not succeeded (queued, running, failed or cancelled)."),
                    "503": unavailable,
                },
            }
        },
        JOBS_PATH + "/{job_id}/events": {
            "get": {
                "operationId": "getJobEvents",
                "summary": "Progress as server-sent events, until the job reaches a final state",
                "tags": ["jobs"],
                "parameters": [
                    _JOB_ID,
                    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "An event stream.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _problem("Last-Event-ID is not an event id."),
                    "404": not_found,
                    "503": unavailable,
                },
            }
        },
    }


openapi_paths: dict[str, Any] = _build_openapi_paths()
"""OpenAPI 3.1 path items of the routes above; `build_app` merges them into `/openapi.json`."""
