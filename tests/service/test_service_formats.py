"""Every output format, chosen by `format=` or by the Accept header, with its media type and content."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import httpx
import pypdfium2 as pdfium
import pytest
from service_support import LINE_ONE, has_words, png

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _pdf_text(body: bytes) -> str:
    document = pdfium.PdfDocument(io.BytesIO(body))
    try:
        return "\n".join(document[index].get_textpage().get_text_range() for index in range(len(document)))
    finally:
        document.close()


def _alto_words(body: bytes) -> str:
    root = ET.fromstring(body)
    return " ".join(el.attrib["CONTENT"] for el in root.iter() if el.tag.endswith("String"))


def _tsv_words(body: str) -> str:
    rows = [line.split("\t") for line in body.splitlines()]
    assert rows[0][:2] == ["level", "page_num"]
    return " ".join(row[11] for row in rows[1:] if len(row) == 12 and row[0] == "5")


CHECKS = {
    "text": ("text/plain; charset=utf-8", lambda r: r.text),
    "hocr": ("text/html; charset=utf-8", lambda r: " ".join(ET.fromstring(r.content).itertext())),
    "tsv": ("text/tab-separated-values; charset=utf-8", lambda r: _tsv_words(r.text)),
    "alto": ("application/xml", lambda r: _alto_words(r.content)),
    "pdf": ("application/pdf", lambda r: _pdf_text(r.content)),
    "json": ("application/json", lambda r: r.json()["text"]),
}


@pytest.mark.parametrize("fmt", list(CHECKS))
async def test_format_parameter_selects_renderer(api: httpx.AsyncClient, fmt: str) -> None:
    response = await api.post("/v1/ocr", params={"format": fmt}, content=png([LINE_ONE]))
    assert response.status_code == 200, response.text
    media_type, extract = CHECKS[fmt]
    assert response.headers["content-type"] == media_type
    assert has_words(extract(response), LINE_ONE), extract(response)


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        ("text/plain", "text"),
        ("text/html", "hocr"),
        ("application/xhtml+xml", "hocr"),
        ("text/tab-separated-values", "tsv"),
        ("application/xml", "alto"),
        ("application/pdf", "pdf"),
        ("application/json", "json"),
        ("*/*", "json"),
        ("image/png;q=1, text/plain;q=0.5, application/json;q=0.2", "text"),
        ("text/*", "text"),
    ],
)
async def test_accept_header_negotiates_format(api: httpx.AsyncClient, accept: str, fmt: str) -> None:
    response = await api.post("/v1/ocr", content=png([LINE_ONE]), headers={"accept": accept})
    assert response.status_code == 200, response.text
    media_type, extract = CHECKS[fmt]
    assert response.headers["content-type"] == media_type
    assert has_words(extract(response), LINE_ONE)


async def test_explicit_format_wins_over_accept(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/ocr?format=text", content=png([LINE_ONE]), headers={"accept": "application/pdf"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


async def test_unsatisfiable_accept_is_406(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/ocr", content=png([LINE_ONE]), headers={"accept": "image/png, text/plain;q=0"})
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/not-acceptable")
