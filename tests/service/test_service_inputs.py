"""POST /v1/ocr accepts the document three ways and in every supported format, and reads it right."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from service_support import LINE_ONE, LINE_TWO, encode, has_words, multipage, png, text_image

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_multipart_upload_with_options_as_form_fields(api: httpx.AsyncClient) -> None:
    document = png([LINE_ONE])
    response = await api.post("/v1/ocr", files={"file": ("scan.png", document, "image/png")}, data={"psm": "6"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    result = response.json()
    assert has_words(result["text"], LINE_ONE)
    assert result["sha256"] == hashlib.sha256(document).hexdigest()
    assert result["language"] == "eng"
    page = result["pages"][0]
    assert page["number"] == 1
    assert (page["width"], page["height"]) == text_image([LINE_ONE]).size
    lines = [line for block in page["blocks"] for paragraph in block["paragraphs"] for line in paragraph["lines"]]
    recognised_words = [word for line in lines for word in line["words"]]
    assert [w["text"] for w in recognised_words] == LINE_ONE.split()
    for word in recognised_words:
        x, y, w, h = word["bbox"]
        assert 0 <= x < x + w <= page["width"] and 0 <= y < y + h <= page["height"]
        assert 0 <= word["confidence"] <= 100
    assert set(result["timings"]) == {"decode_ms", "preprocess_ms", "recognize_ms", "total_ms", "parallel"}


async def test_raw_body_with_its_content_type_and_query_options(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/ocr", params={"format": "text"}, content=png([LINE_TWO]), headers={"content-type": "image/png"}
    )
    assert response.status_code == 200, response.text
    assert has_words(response.text, LINE_TWO)


async def test_raw_body_type_is_sniffed_not_trusted(api: httpx.AsyncClient) -> None:
    """A JPEG declared as application/octet-stream (or even as PNG) is still read as the JPEG it is."""
    jpeg = encode(text_image([LINE_ONE], mode="RGB"), "JPEG", quality=95)
    for declared in ("application/octet-stream", "image/png"):
        response = await api.post("/v1/ocr?format=text", content=jpeg, headers={"content-type": declared})
        assert response.status_code == 200, response.text
        assert has_words(response.text, LINE_ONE)


async def test_json_body_with_base64_content_and_options(api: httpx.AsyncClient) -> None:
    payload = {"content": base64.b64encode(png([LINE_TWO])).decode(), "lang": "eng", "psm": 6, "deskew": False}
    response = await api.post("/v1/ocr", json=payload)
    assert response.status_code == 200, response.text
    assert has_words(response.json()["text"], LINE_TWO)


@pytest.mark.parametrize(
    ("fmt", "params", "mode"),
    [
        ("PNG", {}, "L"),
        ("JPEG", {"quality": 95}, "RGB"),
        ("TIFF", {"compression": "tiff_lzw"}, "L"),
        ("WEBP", {"lossless": True}, "RGB"),
        ("BMP", {}, "RGB"),
        ("GIF", {}, "L"),
    ],
)
async def test_every_image_format_is_recognised(
    api: httpx.AsyncClient, fmt: str, params: dict[str, object], mode: str
) -> None:
    document = encode(text_image([LINE_ONE], mode=mode), fmt, **params)
    response = await api.post("/v1/ocr?format=text", content=document)
    assert response.status_code == 200, f"{fmt}: {response.text}"
    assert has_words(response.text, LINE_ONE), f"{fmt}: {response.text!r}"


@pytest.mark.parametrize("fmt", ["TIFF", "PDF"])
async def test_multipage_documents_return_every_page_in_order(api: httpx.AsyncClient, fmt: str) -> None:
    document = multipage(fmt, [[LINE_ONE], [LINE_TWO], ["Third page says hello"]])
    response = await api.post("/v1/ocr", content=document)
    assert response.status_code == 200, response.text
    pages = response.json()["pages"]
    assert [page["number"] for page in pages] == [1, 2, 3]
    assert has_words(pages[0]["text"], LINE_ONE)
    assert has_words(pages[1]["text"], LINE_TWO)
    assert has_words(pages[2]["text"], "Third page says hello")


async def test_pages_option_selects_pages(api: httpx.AsyncClient) -> None:
    document = multipage("PDF", [[LINE_ONE], [LINE_TWO], ["Third page says hello"]])
    response = await api.post("/v1/ocr", params={"pages": "3,1"}, content=document)
    assert response.status_code == 200, response.text
    pages = response.json()["pages"]
    assert sorted(page["number"] for page in pages) == [1, 3]
    assert has_words(next(p["text"] for p in pages if p["number"] == 3), "Third page says hello")


async def test_language_with_dash_spelling_and_combination(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/ocr", params={"lang": "ENG+deu"}, content=png([LINE_ONE]))
    assert response.status_code == 200, response.text
    assert response.json()["language"] == "eng+deu"
    assert has_words(response.json()["text"], LINE_ONE)
