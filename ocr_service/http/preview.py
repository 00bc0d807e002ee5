"""`POST /v1/preview`: page N of a document as a PNG, so a browser can show what was recognised.

Browsers cannot display TIFF or PDF, and a JPEG's EXIF rotation is applied by some viewers and
not others, so the demo page (`/demo`) asks the service for the page exactly as the engine
decoded it: the same `documents.open_document` / `load_page` path, the same limits (upload
size, pixels, pages, `dpi`), so the boxes of a JSON result land where the words are. The PNG
is scaled down to fit `PREVIEW_MAX_SIDE`; `X-Page-Width` / `X-Page-Height` give the size of
the page the result's `bbox` values refer to, and `X-Page-Count` how many pages there are.

Bounded like recognition: at most `PREVIEW_CONCURRENCY` previews hold a document at once (429
past that, before the body is read). The decode runs on the pipeline's bounded helper threads
(`engine/helpers.py`, never asyncio's default executor) under the request's `Deadline`: past
`OCR_TIMEOUT_SECONDS` the answer is a 504 and the deadline is cancelled, which the document layer
checks between the frames it counts or walks past, so an abandoned decode stops at the next frame
and its helper thread (whose slot is held until then) is soon free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ocr_service.deadline import Deadline
from ocr_service.documents import MEDIA_TYPE_OF_KIND, open_document
from ocr_service.errors import InvalidParameter, Overloaded, RecognitionTimeout
from ocr_service.http.body import BASE64_CONTENT_SCHEMA, UploadPace, read_document
from ocr_service.http.params import MAX_PAGE_NUMBER, MIN_DPI, RawValue, merge_option_sources, parse_int
from ocr_service.http.problems import PROBLEM_MEDIA_TYPE
from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings

PREVIEW_PATH = "/v1/preview"
PREVIEW_MAX_SIDE = 2000
"""Longest side of a preview in pixels: enough for a screen, small enough to encode in milliseconds."""
PREVIEW_CONCURRENCY = 2
"""Previews decoding at once; they share the machine with recognition, which matters more."""
PREVIEW_OPTIONS = ("page", "dpi")


@dataclass(frozen=True)
class Preview:
    png: bytes
    page_width: int
    page_height: int
    page_count: int


def render_preview(
    data: bytes, settings: Settings, page: int, dpi: int | None, deadline: Deadline | None = None
) -> Preview:
    """Decode page `page` as recognition would and encode it as a PNG no larger than `PREVIEW_MAX_SIDE`."""
    document = open_document(data, settings, dpi, deadline)
    try:
        if page > document.page_count:
            raise InvalidParameter(
                f"page {page} does not exist; the document has {document.page_count} page(s)", param="page"
            )
        document.selected((page,))  # the page fits the pixel limit
        image = document.load_page(page, deadline)
        count = document.page_count
    finally:
        document.close()
    pixels: Any = image.pixels
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    scale = min(1.0, PREVIEW_MAX_SIDE / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 grey/BGR array
        raise RuntimeError("PNG encoding failed")
    return Preview(encoded.tobytes(), width, height, count)


def parse_preview_options(raw: Mapping[str, RawValue], settings: Settings) -> tuple[int, int | None]:
    """(`page`, `dpi`) from the query and body options; any other name is a 400, like `/v1/ocr`."""
    unknown = sorted(set(raw) - set(PREVIEW_OPTIONS))
    if unknown:
        raise InvalidParameter(
            f"Unknown option {unknown[0]!r}; a preview takes {', '.join(PREVIEW_OPTIONS)}.", param=unknown[0]
        )
    page = parse_int("page", raw.get("page", 1), 1, MAX_PAGE_NUMBER)
    dpi = parse_int("dpi", raw["dpi"], MIN_DPI, settings.max_dpi) if "dpi" in raw else None
    return page, dpi


class PreviewEndpoint:
    """Counts previews in progress (one event loop: a plain counter is enough)."""

    def __init__(self, settings: Settings, pipeline: OcrPipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.active = 0

    async def preview(self, request: Request) -> Response:
        if self.active >= PREVIEW_CONCURRENCY:  # before the body is read, as for /v1/ocr
            raise Overloaded(f"{PREVIEW_CONCURRENCY} previews are being rendered; retry in 1 s", retry_after=1)
        self.active += 1
        limit = self.settings.timeout_seconds
        try:
            received = await read_document(
                request, self.settings.max_upload_bytes, pace=UploadPace.from_settings(self.settings)
            )
            raw = merge_option_sources(request.query_params.multi_items(), received.options)
            page, dpi = parse_preview_options(raw, self.settings)
            deadline = Deadline.after(limit)
            try:
                preview = await self.pipeline.offload(
                    render_preview, received.data, self.settings, page, dpi, deadline, deadline=deadline
                )
            except RecognitionTimeout:
                raise RecognitionTimeout(f"The preview took longer than {limit:g} s.") from None
        finally:
            self.active -= 1
        headers = {
            "X-Page-Width": str(preview.page_width),
            "X-Page-Height": str(preview.page_height),
            "X-Page-Count": str(preview.page_count),
            "Cache-Control": "no-store",
        }
        return Response(preview.png, media_type="image/png", headers=headers)


def preview_routes(settings: Settings, pipeline: OcrPipeline) -> list[BaseRoute]:
    endpoint = PreviewEndpoint(settings, pipeline)
    return [Route(PREVIEW_PATH, endpoint.preview, methods=["POST"], name="preview")]


def preview_operation(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 operation of `POST /v1/preview` (merged into `/openapi.json` by `openapi.py`)."""
    options: dict[str, Any] = {
        "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER, "default": 1},
        "dpi": {
            "type": "integer",
            "minimum": MIN_DPI,
            "maximum": settings.max_dpi,
            "default": settings.pdf_dpi,
            "description": "Resolution a PDF page is rasterised at; use the `dpi` of the recognition.",
        },
    }
    binary = {"type": "string", "format": "binary"}
    request_content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {**binary, "description": "The document."}, **options},
                "additionalProperties": False,
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["content"],
                "properties": {"content": dict(BASE64_CONTENT_SCHEMA), **options},
                "additionalProperties": False,
            }
        },
    }
    for media_type in sorted(set(MEDIA_TYPE_OF_KIND.values())):  # as /v1/ocr: no promise for any bytes
        request_content[media_type] = {"schema": binary}
    size = {"schema": {"type": "integer"}}
    return {
        "operationId": "preview",
        "summary": "One page of a document as a PNG, decoded exactly as for recognition",
        "description": (
            "Takes the document like `POST /v1/ocr` (multipart `file`, raw body or JSON with base64 `content`) "
            "and answers page `page` as a PNG scaled to fit "
            f"{PREVIEW_MAX_SIDE} px. `X-Page-Width`/`X-Page-Height` are the size of the page in the pixels "
            "a result's `bbox` values use; `X-Page-Count` is the document's page count. Same limits as "
            f"recognition; at most {PREVIEW_CONCURRENCY} previews at once (429 past that)."
        ),
        "tags": ["ocr"],
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in options.items()
        ],
        "requestBody": {"required": True, "content": request_content},
        "responses": {
            "200": {
                "description": "The page as a PNG.",
                "content": {"image/png": {"schema": binary}},
                "headers": {"X-Page-Width": size, "X-Page-Height": size, "X-Page-Count": size},
            },
            "400": _problem("An option is invalid (`param` names it), the page does not exist, or the body is empty."),
            "408": _problem(f"The body did not arrive within {settings.timeout_seconds:g} s."),
            "413": _problem("The body, the page's pixels or the page count exceeds a limit."),
            "415": _problem("The document is not a supported image or PDF."),
            "422": _problem("The document's type is supported but its data cannot be decoded."),
            "429": _problem(f"{PREVIEW_CONCURRENCY} previews are being rendered; retry after `Retry-After` seconds."),
            "504": _problem(f"The preview took longer than {settings.timeout_seconds:g} s."),
        },
    }


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
