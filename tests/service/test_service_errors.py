"""Bad input of every kind gets a precise 4xx problem+json, never a 500, a hang or a dead worker."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pytest
from PIL import Image
from service_support import LINE_ONE, has_words, make_settings, metric_value, png, running_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG signature and IHDR declaring an enormous image, with one tiny IDAT: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))


def png_with_garbled_pixels() -> bytes:
    """A PNG whose signature, IHDR and chunk CRCs are all valid but whose compressed pixel data is garbage.

    Its size check passes on the header; only decoding the pixels can find the damage.
    """
    ihdr = struct.pack(">IIBBBBB", 400, 60, 8, 0, 0, 0, 0)
    garbage = bytes((index * 37 + 11) % 256 for index in range(900))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", garbage) + _png_chunk(b"IEND", b"")


def enormous_pdf_page() -> bytes:
    """A one-page PDF whose page is 200 x 200 inches (the PDF maximum): 60000 px square at 300 DPI."""
    document = pdfium.PdfDocument.new()
    document.new_page(14_400, 14_400)
    buffer = io.BytesIO()
    document.save(buffer)
    document.close()
    return buffer.getvalue()


def many_frame_gif(frames: int) -> bytes:
    images = [Image.new("L", (8, 8), 255 if index % 2 else 0) for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=10, disposal=2)
    return buffer.getvalue()


def assert_problem(response: httpx.Response, status: int, slug: str, param: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == f"https://catalyst-ocr.dev/problems/{slug}", problem
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    if param is not None:
        assert problem.get("param") == param, problem
    return problem


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        (b"", 400, "invalid-parameter"),
        (os.urandom(2048), 415, "unsupported-media-type"),
        (png([LINE_ONE])[:300], 422, "undecodable-document"),
        (png_with_garbled_pixels(), 422, "undecodable-document"),
        (huge_png_header(), 413, "too-many-pixels"),
        (enormous_pdf_page(), 413, "too-many-pixels"),
        (many_frame_gif(60), 413, "too-many-pages"),
        (b"%PDF-1.7\n" + os.urandom(500), 422, "undecodable-document"),
        (b"GIF89a" + b"\xff" * 20, 422, "undecodable-document"),
    ],
    ids=[
        "zero-bytes",
        "random-bytes",
        "truncated-png",
        "garbled-png-pixels",
        "huge-dimensions",
        "enormous-pdf-page",
        "many-frames",
        "broken-pdf",
        "broken-gif",
    ],
)
async def test_bad_documents_get_precise_problems(api: httpx.AsyncClient, body: bytes, status: int, slug: str) -> None:
    response = await api.post("/v1/ocr", content=body, headers={"content-type": "application/octet-stream"})
    assert_problem(response, status, slug)


@pytest.mark.parametrize(
    ("params", "param", "slug"),
    [
        ({"lang": "klingon"}, "lang", "unknown-language"),
        ({"lang": "eng+"}, "lang", "invalid-parameter"),
        ({"lang": "../etc/passwd"}, "lang", "invalid-parameter"),
        ({"psm": "abc"}, "psm", "invalid-parameter"),
        ({"psm": "14"}, "psm", "invalid-parameter"),
        ({"psm": "0"}, "psm", "invalid-parameter"),
        ({"oem": "4"}, "oem", "invalid-parameter"),
        ({"dpi": "10"}, "dpi", "invalid-parameter"),
        ({"dpi": "5000"}, "dpi", "invalid-parameter"),
        ({"dpi": "3e2"}, "dpi", "invalid-parameter"),
        ({"pages": "0"}, "pages", "invalid-parameter"),
        ({"pages": "3-1"}, "pages", "invalid-parameter"),
        ({"pages": "one"}, "pages", "invalid-parameter"),
        ({"pages": "1-999999999"}, "pages", "invalid-parameter"),
        ({"pages": "2"}, "pages", "invalid-parameter"),
        ({"format": "docx"}, "format", "invalid-parameter"),
        ({"preprocess": "maybe"}, "preprocess", "invalid-parameter"),
        ({"deskew": "perhaps"}, "deskew", "invalid-parameter"),
        ({"langs": "eng"}, "langs", "invalid-parameter"),
    ],
)
async def test_bad_options_name_the_parameter(
    api: httpx.AsyncClient, params: dict[str, str], param: str, slug: str
) -> None:
    response = await api.post("/v1/ocr", params=params, content=png([LINE_ONE]))
    assert_problem(response, 400, slug, param)


async def test_option_in_query_and_body_is_ambiguous(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/ocr?psm=6", files={"file": ("a.png", png([LINE_ONE]))}, data={"psm": "7"})
    assert_problem(response, 400, "invalid-parameter", "psm")


@pytest.mark.parametrize(
    ("content", "content_type", "param"),
    [
        (
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
            "multipart/form-data",
            "file",
        ),
        (b"--xyz--\r\n", "multipart/form-data; boundary=xyz", "file"),
        (
            b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--xyz--\r\n',
            "multipart/form-data; boundary=xyz",
            "file",
        ),
        (
            b'--xyz\r\nContent-Disposition: form-data; name="upload"; filename="a.png"\r\n\r\nabc\r\n--xyz--\r\n',
            "multipart/form-data; boundary=xyz",
            "upload",
        ),
        (b'{"content": "' + base64.b64encode(b"x" * 10) + b'", "psm": "6"}', "application/json", "psm"),
        (b"{not json", "application/json", "content"),
        (b"[1, 2]", "application/json", "content"),
        (b'{"lang": "eng"}', "application/json", "content"),
        (b'{"content": "***not base64***"}', "application/json", "content"),
        (b'{"content": "' + base64.b64encode(b"x" * 10) + b'", "psm": [1]}', "application/json", "psm"),
    ],
    ids=[
        "multipart-no-boundary",
        "multipart-without-file",
        "multipart-file-not-a-file-part",
        "multipart-file-under-another-name",
        "json-option-as-string",
        "json-syntax",
        "json-array",
        "json-no-content",
        "json-bad-base64",
        "json-option-type",
    ],
)
async def test_malformed_bodies_are_400(api: httpx.AsyncClient, content: bytes, content_type: str, param: str) -> None:
    response = await api.post("/v1/ocr", content=content, headers={"content-type": content_type})
    assert_problem(response, 400, "invalid-parameter", param)


async def test_form_urlencoded_that_is_not_a_document_is_415_naming_both_ways_out(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/ocr", data={"file": "abc"})
    problem = assert_problem(response, 415, "unsupported-media-type")
    assert "-F file=@" in problem["detail"] and "application/octet-stream" in problem["detail"]


async def test_form_urlencoded_document_is_read_as_the_raw_body(api: httpx.AsyncClient) -> None:
    """What `curl --data-binary @scan.png` sends: the bytes labelled form-urlencoded."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = await api.post("/v1/ocr?format=text&psm=6", content=png([LINE_ONE]), headers=headers)
    assert response.status_code == 200, response.text
    assert has_words(response.text, LINE_ONE)


async def test_unknown_route_and_wrong_method_are_problems(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/v1/nothing-here"), 404, "not-found")
    response = await api.get("/v1/ocr")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "POST"
    assert_problem(await api.delete("/v1/languages"), 405, "method-not-allowed")


async def test_declared_content_length_over_limit_is_413_before_reading(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, max_upload_bytes=1000)) as limited:
        response = await limited.post("/v1/ocr", content=b"\0" * 1001)
        problem = assert_problem(response, 413, "payload-too-large")
        assert "1000" in str(problem["detail"])


async def test_streamed_body_over_limit_is_cut_off(tmp_path: Path) -> None:
    """No Content-Length: the body is refused once 1 KiB past the limit, without reading the rest."""
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10_000):
            sent += 1024
            yield b"\0" * 1024

    async with running_app(make_settings(tmp_path, max_upload_bytes=64 * 1024)) as limited:
        response = await limited.post("/v1/ocr", content=endless())
        assert_problem(response, 413, "payload-too-large")
    assert sent <= 64 * 1024 + 2 * 1024


async def test_multipart_and_json_bodies_respect_the_limit(tmp_path: Path) -> None:
    big = png([LINE_ONE] * 6)
    async with running_app(make_settings(tmp_path, max_upload_bytes=len(big) - 1)) as limited:
        response = await limited.post("/v1/ocr", files={"file": ("a.png", big)})
        assert_problem(response, 413, "payload-too-large")
        response = await limited.post("/v1/ocr", json={"content": base64.b64encode(big).decode()})
        assert_problem(response, 413, "payload-too-large")


async def test_service_survives_all_of_it_without_a_500(api: httpx.AsyncClient) -> None:
    """After a burst of hostile input the workers still recognise, and nothing reached the catch-all."""
    for body in (b"", os.urandom(4096), huge_png_header(), many_frame_gif(60), png([LINE_ONE])[:200]):
        response = await api.post("/v1/ocr", content=body)
        assert 400 <= response.status_code < 500
    response = await api.post("/v1/ocr?format=text", content=png([LINE_ONE]))
    assert response.status_code == 200
    assert has_words(response.text, LINE_ONE)
    exposition = (await api.get("/metrics")).text
    assert metric_value(exposition, "ocr_rejected_requests_total", reason="internal-error") == 0


async def test_trickling_body_is_cut_off_with_408(tmp_path: Path) -> None:
    sent = 0

    async def trickle() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(200):  # 20 s if nobody stopped it
            sent += 1
            yield b"\0" * 16
            await asyncio.sleep(0.1)

    async with running_app(make_settings(tmp_path, timeout_seconds=0.5)) as limited:
        response = await limited.post("/v1/ocr", content=trickle())
        assert_problem(response, 408, "request-timeout")
        assert response.headers["connection"] == "close"
    assert sent < 50
