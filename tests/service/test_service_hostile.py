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
