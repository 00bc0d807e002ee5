"""`POST /v1/preview` (page N as a PNG, decoded as recognition decodes it) and the `/demo` page's serving.

The browser side of the demo is tested in test_demo_page.py; here the service's half: the
preview's pixels and page size are exactly those the JSON result's boxes refer to, limits and
errors are those of `/v1/ocr`, and `/demo` loads without an API key under a 'self'-only CSP.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_support import LINE_ONE, LINE_TWO, encode, make_settings, multipage, png, running_app, text_image

from ocr_service.http.preview import PREVIEW_CONCURRENCY, PREVIEW_MAX_SIDE

pytestmark = pytest.mark.asyncio(loop_scope="module")
RAW = {"content-type": "application/octet-stream"}


def decoded(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


async def test_tiff_page_n_is_that_frame_at_the_size_the_boxes_use(api: httpx.AsyncClient) -> None:
    document = multipage("TIFF", [[LINE_ONE], [LINE_TWO, LINE_ONE], ["Third"]])
    result = (await api.post("/v1/ocr", content=document, headers=RAW)).json()
    response = await api.post("/v1/preview?page=2", content=document, headers=RAW)
    image = decoded(response)
    assert response.headers["x-page-count"] == "3"
    page_two = result["pages"][1]
    assert (int(response.headers["x-page-width"]), int(response.headers["x-page-height"])) == (
        page_two["width"],
        page_two["height"],
    )
    with Image.open(io.BytesIO(document)) as tiff:
        tiff.seek(1)
        assert np.array_equal(np.asarray(image), np.asarray(tiff.convert("L")))


async def test_pdf_pages_render_at_the_requested_dpi_in_every_body_style(api: httpx.AsyncClient) -> None:
    document = multipage("PDF", [[LINE_ONE], [LINE_TWO]])
    result = (await api.post("/v1/ocr?dpi=100&pages=2", content=document, headers=RAW)).json()
    want = (result["pages"][0]["width"], result["pages"][0]["height"])
    answers = [
        await api.post("/v1/preview?page=2&dpi=100", content=document, headers=RAW),
        await api.post("/v1/preview", files={"file": document}, data={"page": "2", "dpi": "100"}),
        await api.post("/v1/preview", json={"content": base64.b64encode(document).decode(), "page": 2, "dpi": 100}),
    ]
    for response in answers:
        assert decoded(response).size == want
        assert response.headers["x-page-count"] == "2"


async def test_large_pages_are_scaled_down_but_report_their_own_size(api: httpx.AsyncClient) -> None:
    wide = Image.new("L", (PREVIEW_MAX_SIDE * 3 // 2, 600), "white")
    response = await api.post("/v1/preview", content=encode(wide, "PNG"), headers=RAW)
    assert decoded(response).size == (PREVIEW_MAX_SIDE, 400)
    assert response.headers["x-page-width"] == str(PREVIEW_MAX_SIDE * 3 // 2)
    assert response.headers["x-page-height"] == "600"


@pytest.mark.parametrize(
    ("query", "body", "status", "slug", "param"),
    [
        ("?page=3", "two-page-tiff", 400, "invalid-parameter", "page"),
        ("?page=0", "png", 400, "invalid-parameter", "page"),
        ("?pages=1", "png", 400, "invalid-parameter", "pages"),
        ("?dpi=9999", "png", 400, "invalid-parameter", "dpi"),
        ("", "garbage", 415, "unsupported-media-type", None),
        ("", "truncated", 422, "undecodable-document", None),
        ("", "empty", 400, "invalid-parameter", "file"),
    ],
)
async def test_errors_are_the_problems_of_v1_ocr(
    api: httpx.AsyncClient, query: str, body: str, status: int, slug: str, param: str | None
) -> None:
    bodies = {
        "two-page-tiff": multipage("TIFF", [[LINE_ONE], [LINE_TWO]]),
        "png": png(),
        "garbage": b"this is not a scan",
        "truncated": png()[:200],
        "empty": b"",
    }
    response = await api.post(f"/v1/preview{query}", content=bodies[body], headers=RAW)
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["type"].endswith("/" + slug)
    assert problem.get("param") == param


async def test_pixel_and_upload_limits_apply(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_pixels=100_000, max_upload_bytes=50_000)
    async with running_app(settings) as client:
        big = encode(text_image([LINE_ONE * 2], size=60), "PNG")
        response = await client.post("/v1/preview", content=big, headers=RAW)
        assert response.status_code == 413 and response.json()["type"].endswith("/too-many-pixels")
        noise = encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 300), dtype=np.uint8)), "PNG")
        response = await client.post("/v1/preview", content=noise, headers=RAW)
        assert response.status_code == 413 and response.json()["type"].endswith("/payload-too-large")


async def test_previews_past_the_limit_are_refused_before_their_body_is_read(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def stalled_body() -> AsyncIterator[bytes]:
        yield png()[:100]
        await release.wait()
        yield png()[100:]

    async with running_app(make_settings(tmp_path)) as client:
        held = [
            asyncio.create_task(client.post("/v1/preview", content=stalled_body(), headers=RAW))
            for _ in range(PREVIEW_CONCURRENCY)
        ]
        await asyncio.sleep(0.3)
        refused = await client.post("/v1/preview", content=png(), headers=RAW)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        release.set()
        assert [(await task).status_code for task in held] == [200] * PREVIEW_CONCURRENCY
        assert (await client.post("/v1/preview", content=png(), headers=RAW)).status_code == 200


async def test_a_preview_past_the_time_limit_is_a_504_and_frees_its_slot(tmp_path: Path) -> None:
    document = multipage("PDF", [[LINE_ONE]])
    async with running_app(make_settings(tmp_path, timeout_seconds=0.05, max_dpi=1200)) as client:
        response = await client.post("/v1/preview?dpi=1200", content=document, headers=RAW)
        assert response.status_code == 504, response.text
        assert response.json()["type"].endswith("/timeout")
        for _ in range(100):  # the abandoned decode finishes on its own; then its slot is free again
            app_endpoint_free = (await client.post("/v1/preview?dpi=36", content=document, headers=RAW)).status_code
            if app_endpoint_free == 200:
                break
            await asyncio.sleep(0.1)
        assert app_endpoint_free == 200


async def test_demo_loads_without_a_key_under_a_self_only_csp_and_the_api_needs_one(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, api_keys=("k-123",))) as client:
        page = await client.get("/demo")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "http" not in csp and "unsafe" not in csp and "blob:" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert 'src="demo/assets/demo.js"' in page.text and "//" not in page.text.split("<body>")[0].replace(
            "http://www.w3.org", ""
        )
        for asset in ("demo.js", "demo.css", "favicon.svg"):
            response = await client.get(f"/demo/assets/{asset}")
            assert response.status_code == 200, asset
            assert response.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/demo/assets/missing.js")).status_code == 404
        assert (await client.post("/v1/preview", content=png(), headers=RAW)).status_code == 401
        keyed = await client.post("/v1/preview", content=png(), headers={**RAW, "x-api-key": "k-123"})
        assert keyed.status_code == 200
        document = (await client.get("/openapi.json")).json()
        assert document["paths"]["/demo"]["get"]["security"] == []
        assert "401" in document["paths"]["/v1/preview"]["post"]["responses"]
