"""`POST /v1/ocr`: one document in, its recognition out, synchronously.

The flow is deliberately straight: admit the request (no more requests hold a document than
the pool has slots, else 429 before the body is read; the slot is given back once recognition
is done, or at once when the client disconnects; `admission.py`) -> read the body
(size-limited) -> parse the options (the same parser as the CLI) -> ask the result cache
(`app.state.cache`; a hit answers with `X-Cache: hit` and `"cached": true`) -> `pipeline.run`
(decode, preprocess, recognise, render; raises 429/504/4xx as `OcrError`) -> store in the
cache -> answer with the rendered body.
Errors become problem+json in `problems.py`; nothing here catches them.

This runs on the event loop for every request, so what does not change between requests is
not recomputed: parsed options are remembered per query string (raw bodies carry their options
there), a disabled cache costs no digest or key, and metric series are bound once.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ocr_service import metrics
from ocr_service.cache import ResultCache, document_digest, engine_version, mark_cached, result_key
from ocr_service.http.admission import DocumentAdmission, while_connected
from ocr_service.http.body import read_document
from ocr_service.http.negotiation import negotiate_format
from ocr_service.http.params import RawValue, merge_option_sources, parse_options
from ocr_service.options import MEDIA_TYPES, OcrOptions, OutputFormat
from ocr_service.pipeline import OcrOutcome, OcrPipeline
from ocr_service.settings import Settings

OCR_PATH = "/v1/ocr"
PARSED_QUERIES_KEPT = 256
"""How many distinct (query string, Accept) pairs keep their parsed options; the memo starts over when full."""
PARSED_QUERY_MAX_CHARS = 1024
"""Longer query strings (and Accept headers) are parsed every time rather than remembered."""


class OcrEndpoint:
    def __init__(self, settings: Settings, pipeline: OcrPipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.admission = DocumentAdmission(pipeline.capacity, pipeline.overloaded)
        self._parsed_queries: dict[tuple[bytes, str | None], OcrOptions] = {}

    async def recognize(self, request: Request) -> Response:
        cache: ResultCache = request.app.state.cache
        with self.admission.admit():  # held while the request holds a document and its work runs
            received = await read_document(
                request, self.settings.max_upload_bytes, time_limit=self.settings.timeout_seconds
            )
            options = self.options(request, received.options)
            digest = key = None
            if cache.enabled:  # a disabled cache costs no digest and no key
                digest = await document_digest(received.data)
                key = result_key(digest, options, options.format.value, engine_version(self.pipeline.engine_info()))
                hit = await cache.get(key)
                if hit is not None:
                    body = mark_cached(hit, options.format, cached=True)
                    return Response(body, media_type=MEDIA_TYPES[options.format], headers={"X-Cache": "hit"})
            run = self.pipeline.run(received.data, options, timeout=self.settings.timeout_seconds, sha256=digest)
            outcome = await while_connected(request, run)
        # The work is done and its slot free: a client waiting for this answer may send its next one.
        record_recognition(outcome, options.format)
        if key is not None:
            await cache.put(key, outcome.body)
        body = mark_cached(outcome.body, options.format, cached=False)
        return Response(body, media_type=outcome.media_type, headers={"X-Cache": "miss"})

    def options(self, request: Request, body_options: Mapping[str, RawValue]) -> OcrOptions:
        """Query parameters and body options together; naming one option in both places is ambiguous.

        A raw body carries no options, so its options depend on the query string and `Accept`
        alone: those parsed without error are remembered (parsing is pure, and the languages are
        fixed for the process), except a `pages` list, which can be long.
        """
        if body_options:
            return self._parse(request, body_options)
        accept = request.headers.get("accept")
        key = (request.scope["query_string"], accept)
        options = self._parsed_queries.get(key)
        if options is None:
            options = self._parse(request, body_options)
            if options.pages is None and len(key[0]) + len(accept or "") <= PARSED_QUERY_MAX_CHARS:
                if len(self._parsed_queries) >= PARSED_QUERIES_KEPT:
                    self._parsed_queries.clear()
                self._parsed_queries[key] = options
        return options

    def _parse(self, request: Request, body_options: Mapping[str, RawValue]) -> OcrOptions:
        raw = merge_option_sources(request.query_params.multi_items(), body_options)
        default_format = OutputFormat.JSON if "format" in raw else negotiate_format(request.headers.get("accept"))
        return parse_options(raw, self.settings, self.pipeline.resolve_lang, default_format=default_format)


def record_recognition(outcome: OcrOutcome, output_format: OutputFormat) -> None:
    """Recognition metrics from a finished outcome: duration, pages, per-page confidence."""
    result = outcome.result
    metrics.recognition_duration_series(output_format.value).observe(result.timings.total_ms / 1000)
    metrics.PAGES_RECOGNIZED.inc(len(result.pages))
    for page in result.pages:
        metrics.RECOGNITION_CONFIDENCE.observe(page.confidence)


def ocr_routes(settings: Settings, pipeline: OcrPipeline) -> list[BaseRoute]:
    endpoint = OcrEndpoint(settings, pipeline)
    return [Route(OCR_PATH, endpoint.recognize, methods=["POST"], name="ocr")]
