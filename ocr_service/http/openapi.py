"""The OpenAPI 3.1 description of the service, built from the same constants the code uses.

Enums and bounds come from `options`, `params` and the running `Settings` (e.g. the `dpi`
maximum is `settings.max_dpi`), so the document cannot drift from what the parser accepts.
A test drives the live app from this document with schemathesis and checks every answer
against it. The jobs work merges its own path items (`http.jobs.openapi_paths`); its submission
body is `#/components/requestBodies/JobDocument`, built here with the same option schemas.

What the schema admits, the server accepts (issue 10, item 10): `content` is non-empty base64,
raw bodies are declared only for the media types a document can have (the server still sniffs
any body, `application/octet-stream` included, but the document does not promise that random
bytes are a document), and `lang` only names the languages installed when the app was built.
"""

from __future__ import annotations

import re
from typing import Any

from ocr_service import __version__
from ocr_service.contract import HEALTH_PATH, LIVENESS_PATH, METRICS_PATH, READINESS_PATH
from ocr_service.documents import MEDIA_TYPE_OF_KIND
from ocr_service.engine.languages import installed_languages
from ocr_service.errors import PROBLEM_TYPE_BASE
from ocr_service.http.body import BASE64_CONTENT_SCHEMA
from ocr_service.http.demo import DEMO_PATH, demo_operation
from ocr_service.http.params import (
    LANG_PATTERN,
    MAX_PAGE_SPEC_LENGTH,
    MIN_DPI,
    PAGES_PATTERN,
    PREPROCESS_MODES,
)
from ocr_service.http.preview import PREVIEW_PATH, preview_operation
from ocr_service.http.problems import PROBLEM_MEDIA_TYPE
from ocr_service.options import MEDIA_TYPES, OEM_RANGE, PREPROCESS_STEPS, PSM_RANGE, UNSUPPORTED_PSM, OutputFormat
from ocr_service.settings import Settings

Schema = dict[str, Any]

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
DOCS_BASE_URL = "https://github.com/catalyst-ocr/catalyst-ocr/blob/main/docs/"
"""Where the project's docs/ are published (the chart's `home`); the OpenAPI descriptions link there."""
API_REFERENCE_URL = DOCS_BASE_URL + "api.md"
JOBS_REFERENCE_URL = DOCS_BASE_URL + "jobs.md"


def openapi_document(
    settings: Settings, *, auth_enabled: bool, extra_paths: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole document for an app built with `settings`."""
    paths: dict[str, Any] = {
        "/v1/ocr": {"post": _ocr_operation(settings)},
        "/v1/languages": {"get": _languages_operation()},
        "/v1/info": {"get": _info_operation()},
        LIVENESS_PATH: {"get": _liveness_operation()},
        READINESS_PATH: {"get": _readiness_operation("Readiness: 200 when every check passes, else 503.")},
        HEALTH_PATH: {"get": _readiness_operation(f"Alias of `{READINESS_PATH}` for docker-compose health checks.")},
        METRICS_PATH: {"get": _metrics_operation()},
        "/openapi.json": {"get": _self_operation()},
        "/docs": {"get": _docs_operation()},
        PREVIEW_PATH: {"post": preview_operation(settings)},
        DEMO_PATH: {"get": demo_operation()},
    }
    paths.update(extra_paths or {})
    open_paths = {LIVENESS_PATH, READINESS_PATH, HEALTH_PATH, METRICS_PATH, "/openapi.json", "/docs", DEMO_PATH}
    for path, item in paths.items():
        for operation in item.values():
            if path in open_paths:
                operation["security"] = []
            elif auth_enabled:
                operation.setdefault("responses", {})["401"] = _problem("Missing or invalid API key.", auth=True)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Catalyst OCR",
            "version": __version__,
            "summary": "Synchronous OCR with Tesseract: images and scanned PDFs in, text and layout out.",
            "description": (
                "Errors are `application/problem+json` (RFC 9457) with a stable `type` under "
                f"`{PROBLEM_TYPE_BASE}`. The full reference: [docs/api.md]({API_REFERENCE_URL}) "
                f"(asynchronous jobs: [docs/jobs.md]({JOBS_REFERENCE_URL}))."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "requestBodies": {
                "Document": _document_body(settings, {}),
                "JobDocument": _document_body(settings, {"callback_url": _callback_url_schema(settings)}),
            },
            "parameters": {
                "CallbackUrl": {
                    "name": "callback_url",
                    "in": "query",
                    "required": False,
                    "schema": _callback_url_schema(settings),
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
    if auth_enabled:
        document["security"] = [{"bearer": []}, {"apiKey": []}]
    return document


def _option_schemas(settings: Settings) -> dict[str, Schema]:
    """Each option's schema, shared by query parameters, form fields and JSON members."""
    schemas: dict[str, Schema] = {
        "lang": {
            "type": "string",
            "pattern": _installed_lang_pattern(),
            "default": settings.default_lang,
            "examples": ["eng", "eng+deu"],
            "description": "Installed language codes joined by `+` (write `%2B` in a query string, where a bare `+` "
            "is a space; a space between codes is accepted as `+`); `-` is accepted for `_`. See /v1/languages.",
        },
        "psm": {
            "type": "integer",
            "enum": [psm for psm in range(PSM_RANGE[0], PSM_RANGE[1] + 1) if psm not in UNSUPPORTED_PSM],
            "default": settings.default_psm,
            "description": "Tesseract page segmentation mode (0 and 2 recognise no text and are refused).",
        },
        "oem": {
            "type": "integer",
            "enum": [oem for oem in range(OEM_RANGE[0], OEM_RANGE[1] + 1) if oem not in LEGACY_OEMS],
            "default": settings.default_oem,
            "description": (
                "Tesseract engine mode: 1 = LSTM (default), 3 = Tesseract's default. 0 and 2 use the legacy "
                "engine: accepted only where legacy models are installed (not in the shipped images; else 400), "
                "so this document does not promise them."
            ),
        },
        "dpi": {
            "type": "integer",
            "minimum": MIN_DPI,
            "maximum": settings.max_dpi,
            "default": settings.pdf_dpi,
            "description": "Resolution PDF pages are rasterised at; images are recognised at their own pixels.",
        },
        "pages": {
            "type": "string",
            "pattern": PAGES_PATTERN.pattern,
            "maxLength": MAX_PAGE_SPEC_LENGTH,
            "examples": ["1-3,7"],
            "description": "1-based pages to recognise; every page when absent.",
        },
        "preprocess": {
            "type": "string",
            "enum": list(PREPROCESS_MODES),
            "default": settings.default_preprocess,
            "description": "`auto` picks preprocessing steps per page; `none` recognises the page as it is.",
        },
        "format": {
            "type": "string",
            "enum": [fmt.value for fmt in OutputFormat],
            "default": OutputFormat.JSON.value,
            "description": "Output format; when absent, the `Accept` header chooses (JSON by default).",
        },
    }
    for step in PREPROCESS_STEPS:
        schemas[step] = {
            "type": "boolean",
            "description": f"Force the `{step}` step on (`true`) or off (`false`); `auto` decides when absent.",
        }
    return schemas


LEGACY_OEMS = frozenset({0, 2})
"""Engine modes that need legacy (non-LSTM) models, which the shipped language data lacks."""
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_URL_REST = r"(?:[/?#][^\s\x00-\x1f\x7f-\x9f]*)?"


def _any_case(text: str) -> str:
    """`text` as a regex matching it in any letter case (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in text)


def _callback_url_schema(settings: Settings) -> Schema:
    """`callback_url` exactly as `jobs.callbacks.check_callback_url` takes it on this service:
    http(s) to a host of OCR_CALLBACK_ALLOWED_HOSTS, no credentials, no whitespace or control
    characters. With no host allowed only the empty string (no callback) is valid."""
    hosts = []
    for entry in settings.callback_allowed_hosts:
        host, _, port = entry.partition(":") if not entry.startswith("[") else (entry, "", "")
        name = (
            (r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\." + _any_case(host[2:])) if host.startswith("*.") else _any_case(host)
        )
        hosts.append(name + (f":{re.escape(port)}" if port else f"(?::{_PORT})?"))
    description = "Where the signed completion callback goes: http(s) to a host in OCR_CALLBACK_ALLOWED_HOSTS."
    if not hosts:
        return {"type": "string", "maxLength": 0, "description": description + " None is allowed on this service."}
    return {
        "type": "string",
        "pattern": "^(?:|[hH][tT][tT][pP][sS]?://(?:" + "|".join(hosts) + ")" + _URL_REST + ")$",
        "description": description,
    }


def _installed_lang_pattern() -> str:
    """`lang` as the parser takes it, limited to the installed languages (`_` may be written `-`)."""
    codes = sorted(installed_languages(), key=len, reverse=True)
    if not codes:
        return LANG_PATTERN.pattern
    one = "(?:" + "|".join(re.escape(code).replace("_", "[_-]") for code in codes) + ")"
    return f"^{one}(?:[+ ]{one})*$"


def _document_body(settings: Settings, extra: dict[str, Schema]) -> dict[str, Any]:
    """The request body of a document submission: multipart, JSON with base64 `content`, or raw bytes."""
    options = {**_option_schemas(settings), **extra}
    form_schema: Schema = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": "The document."}, **options},
        "additionalProperties": False,
    }
    json_schema: Schema = {
        "type": "object",
        "required": ["content"],
        "properties": {
            "content": dict(BASE64_CONTENT_SCHEMA),
            **options,
        },
        "additionalProperties": False,
    }
    binary: Schema = {"type": "string", "format": "binary"}
    content: dict[str, Any] = {
        "multipart/form-data": {"schema": form_schema},
        "application/json": {"schema": json_schema},
    }
    for media_type in sorted(set(MEDIA_TYPE_OF_KIND.values())):
        content[media_type] = {"schema": binary}
    return {"required": True, "content": content}


def _ocr_operation(settings: Settings) -> dict[str, Any]:
    options = _option_schemas(settings)
    parameters = [
        {"name": name, "in": "query", "required": False, "schema": schema, "description": schema.get("description")}
        for name, schema in options.items()
    ]
    success_content: dict[str, Any] = {
        MEDIA_TYPES[OutputFormat.JSON]: {"schema": {"$ref": "#/components/schemas/OcrResult"}},
    }
    for fmt in OutputFormat:
        if fmt is not OutputFormat.JSON:
            media_type = MEDIA_TYPES[fmt].split(";")[0]
            success_content[media_type] = {
                "schema": {"type": "string", "format": "binary"} if fmt is OutputFormat.PDF else {"type": "string"}
            }
    return {
        "operationId": "recognize",
        "summary": "Recognise one document synchronously",
        "description": (
            "Send the document as multipart/form-data (field `file`), as the raw body with its own "
            "Content-Type, or as JSON with base64 `content`. The type is detected from the bytes. "
            "Options go in the query string or beside the document (form fields / JSON members), not both. "
            f"Bodies over {settings.max_upload_bytes} bytes are refused with 413. "
            f"Every option and error: [docs/api.md]({API_REFERENCE_URL})."
        ),
        "tags": ["ocr"],
        "parameters": parameters,
        "requestBody": {"$ref": "#/components/requestBodies/Document"},
        "responses": {
            "200": {
                "description": "The recognised document in the requested format.",
                "content": success_content,
                "headers": {
                    "X-Cache": {
                        "description": "`hit` when the result came from the result cache, else `miss`.",
                        "schema": {"type": "string", "enum": ["hit", "miss"]},
                    }
                },
            },
            "400": _problem("An option is invalid (`param` names it) or the body is malformed or empty."),
            "406": _problem("The Accept header matches none of the output formats."),
            "408": _problem(
                f"The body arrived too slowly: it gets {settings.body_timeout_seconds:g} s plus 1 s per"
                f" {settings.min_upload_bytes_per_second} bytes received, at most {settings.timeout_seconds:g} s."
            ),
            "413": _problem("The body, a page's pixels or the page count exceeds a limit."),
            "415": _problem("The document is not a supported image or PDF."),
            "422": _problem("The document's type is supported but its data cannot be decoded."),
            "429": _problem(
                "Every worker is busy and the queue is full; retry after `Retry-After` seconds.", retry=True
            ),
            "500": _problem("A bug: the problem names no internals; the log has the details under its request id."),
            "503": _problem("The engine is not running (the service is starting up or shutting down)."),
            "504": _problem(f"Recognition took longer than {settings.timeout_seconds:g} s and was stopped."),
        },
    }


def _languages_operation() -> dict[str, Any]:
    return {
        "operationId": "listLanguages",
        "summary": "Installed recognition languages",
        "tags": ["meta"],
        "responses": {
            "200": {
                "description": "Languages usable in `lang`.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Languages"}}},
            }
        },
    }


def _info_operation() -> dict[str, Any]:
    return {
        "operationId": "info",
        "summary": "Versions, engine, limits and defaults",
        "tags": ["meta"],
        "responses": {
            "200": {
                "description": "What this instance runs and accepts.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Info"}}},
            }
        },
    }


def _liveness_operation() -> dict[str, Any]:
    return {
        "operationId": "liveness",
        "summary": "Liveness: the process answers (no dependency is checked)",
        "tags": ["probes"],
        "responses": {
            "200": {
                "description": "Alive.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Liveness"}}},
            }
        },
    }


def _readiness_operation(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["probes"],
        "responses": {
            "200": {
                "description": "Every check passed.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}},
            },
            "503": {
                "description": "At least one check failed; `checks` says which and why.",
                "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ReadinessProblem"}}},
            },
        },
    }


def _metrics_operation() -> dict[str, Any]:
    return {
        "operationId": "metrics",
        "summary": "Prometheus metrics",
        "tags": ["probes"],
        "responses": {
            "200": {
                "description": "Prometheus text exposition format 0.0.4.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    }


def _self_operation() -> dict[str, Any]:
    return {
        "operationId": "openapi",
        "summary": "This document",
        "tags": ["meta"],
        "responses": {
            "200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    }


def _docs_operation() -> dict[str, Any]:
    return {
        "operationId": "docs",
        "summary": "Interactive API reference (Swagger UI, served locally)",
        "tags": ["meta"],
        "responses": {"200": {"description": "HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
    }


def _problem(description: str, *, retry: bool = False, auth: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}}
    headers: dict[str, Any] = {}
    if retry:
        headers["Retry-After"] = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
    if auth:
        headers["WWW-Authenticate"] = {"description": '`Bearer realm="catalyst-ocr"`', "schema": {"type": "string"}}
    if headers:
        response["headers"] = headers
    return response


def _bbox() -> Schema:
    return {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 4,
        "maxItems": 4,
        "description": "[x, y, width, height] in page pixels.",
    }


def _schemas() -> dict[str, Schema]:
    number = {"type": "number"}
    word = {
        "type": "object",
        "required": ["text", "confidence", "bbox"],
        "properties": {"text": {"type": "string"}, "confidence": number, "bbox": _bbox()},
    }
    line = {
        "type": "object",
        "required": ["text", "confidence", "bbox", "words"],
        "properties": {
            "text": {"type": "string"},
            "confidence": number,
            "bbox": _bbox(),
            "words": {"type": "array", "items": word},
        },
    }
    paragraph = {
        "type": "object",
        "description": "Lines Tesseract's layout analysis groups as one paragraph; `text` joins them with newlines.",
        "required": ["text", "bbox", "lines"],
        "properties": {"text": {"type": "string"}, "bbox": _bbox(), "lines": {"type": "array", "items": line}},
    }
    block = {
        "type": "object",
        "description": "A region of the page; `text` separates its paragraphs with a blank line.",
        "required": ["text", "bbox", "paragraphs"],
        "properties": {
            "text": {"type": "string"},
            "bbox": _bbox(),
            "paragraphs": {"type": "array", "items": paragraph},
        },
    }
    parallel = {
        "type": "integer",
        "minimum": 1,
        "description": "Regions of the page recognised at once on several workers; 1 = the page whole"
        " (`OCR_PAGE_PARALLELISM`).",
    }
    page_timings = {
        "type": "object",
        "properties": {
            **{name: number for name in ("decode_ms", "preprocess_ms", "recognize_ms")},
            "parallel": parallel,
        },
    }
    page = {
        "type": "object",
        "required": ["number", "width", "height", "text", "confidence", "blocks"],
        "properties": {
            "number": {"type": "integer", "minimum": 1},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "dpi": {"type": ["integer", "null"]},
            "coordinate_space": {"type": "string", "enum": ["original", "preprocessed"]},
            "image": {
                "type": "object",
                "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
            },
            "text": {"type": "string"},
            "confidence": number,
            "blocks": {"type": "array", "items": block},
            "preprocessing": {"type": "object"},
            "timings": page_timings,
        },
    }
    return {
        "OcrResult": {
            "type": "object",
            "required": ["text", "confidence", "language", "engine", "sha256", "timings", "pages"],
            "properties": {
                "text": {"type": "string", "description": "Every page's text; pages separated by a form feed."},
                "confidence": {**number, "description": "Mean word confidence, 0-100."},
                "language": {"type": "string"},
                "engine": {
                    "type": "object",
                    "required": ["name", "version"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "timings": {
                    "type": "object",
                    "required": ["decode_ms", "preprocess_ms", "recognize_ms", "total_ms"],
                    "properties": {
                        **{name: number for name in ("decode_ms", "preprocess_ms", "recognize_ms", "total_ms")},
                        "parallel": {**parallel, "description": "The most regions any page was recognised in."},
                    },
                },
                "pages": {"type": "array", "items": page},
                "cached": {"type": "boolean", "description": "Whether the result came from the result cache."},
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "param": {"type": "string", "description": "The request parameter at fault, when there is one."},
            },
        },
        "ReadinessProblem": {
            "allOf": [
                {"$ref": "#/components/schemas/Problem"},
                {
                    "type": "object",
                    "required": ["checks"],
                    "properties": {"checks": {"$ref": "#/components/schemas/Checks"}},
                },
            ]
        },
        "Checks": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["ok", "detail"],
                "properties": {"ok": {"type": "boolean"}, "detail": {"type": "string"}, "duration_ms": number},
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {"status": {"const": "ready"}, "checks": {"$ref": "#/components/schemas/Checks"}},
        },
        "Liveness": {"type": "object", "required": ["status"], "properties": {"status": {"const": "alive"}}},
        "Languages": {
            "type": "object",
            "required": ["languages", "default"],
            "properties": {
                "languages": {"type": "array", "items": {"type": "string"}},
                "default": {"type": "string"},
            },
        },
        "Info": {
            "type": "object",
            "required": ["service", "engine", "limits", "defaults", "formats", "preprocess_steps", "languages"],
            "properties": {
                "service": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
                "engine": {"type": "object"},
                "versions": {"type": "object", "additionalProperties": {"type": "string"}},
                "limits": {"type": "object", "additionalProperties": {"type": "number"}},
                "defaults": {"type": "object"},
                "formats": {"type": "object", "additionalProperties": {"type": "string"}},
                "preprocess_steps": {"type": "array", "items": {"type": "string"}},
                "languages": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
