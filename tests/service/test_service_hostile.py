"""Hostile input, round two (issue 10): malformed bodies and headers get a precise 4xx problem, never a 500."""

from __future__ import annotations

import base64

import httpx
import pytest
from service_support import LINE_ONE, png
from test_service_errors import assert_problem

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONTENT = base64.b64encode(b"x" * 10).decode()


@pytest.mark.parametrize("path", ["/v1/ocr", "/v1/jobs"])
@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"content": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "content"),
        (b'{"content": "' + CONTENT.encode() + b'", "psm": ' + b"7" * 5000 + b"}", "content"),
        (b'{"content": "' + CONTENT.encode() + b'", "psm": 6, "psm": 7}', "psm"),
    ],
    ids=["nested-100000-deep", "psm-5000-digits", "psm-twice"],
)
async def test_malformed_json_bodies_are_400(api: httpx.AsyncClient, path: str, body: bytes, param: str) -> None:
    response = await api.post(path, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 400, "invalid-parameter", param)


async def test_json_option_given_once_still_works(api: httpx.AsyncClient) -> None:
    body = {"content": base64.b64encode(png([LINE_ONE])).decode(), "psm": 6, "format": "text"}
    response = await api.post("/v1/ocr", json=body)
    assert response.status_code == 200, response.text


def _white_png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return buffer.getvalue()


_WIDE_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 8000 100]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


@pytest.mark.parametrize(("width", "height"), [(32768, 1), (1, 32768), (32768, 200), (1200, 32768)])
async def test_a_side_past_leptonicas_limit_is_413_not_500(api: httpx.AsyncClient, width: int, height: int) -> None:
    """Leptonica takes at most 32767 px a side: such pages used to fail inside Tesseract as a 500."""
    response = await api.post("/v1/ocr", content=_white_png(width, height))
    problem = assert_problem(response, 413, "page-too-wide")
    assert "32767" in str(problem["detail"])


async def test_a_pdf_page_too_wide_at_the_requested_dpi_is_413_and_fits_at_a_lower_one(api: httpx.AsyncClient) -> None:
    """8000 pt at 300 dpi is 33333 px; at 72 dpi the same page is 8000 px and is read."""
    headers = {"content-type": "application/pdf"}
    problem = assert_problem(await api.post("/v1/ocr", content=_WIDE_PDF, headers=headers), 413, "page-too-wide")
    assert "dpi" in str(problem["detail"])
    fitted = await api.post("/v1/ocr", content=_WIDE_PDF, headers=headers, params={"dpi": 72, "format": "text"})
    assert fitted.status_code == 200, fitted.text
