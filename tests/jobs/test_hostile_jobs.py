"""Hostile input on the jobs API (issue 10): event-stream resume ids and result parameters, on both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from jobs_support import job_settings, parse_sse, png, running_app, wait_final


@pytest.fixture(params=["sqlite", "postgresql"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    async with running_app(job_settings(tmp_path, database_url=url)) as running:
        yield running


def assert_invalid(response: httpx.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/invalid-parameter") and problem["param"] == param, problem


async def finished_job(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/jobs", content=png("Kilo Lima 42"), params={"format": "text"})
    assert response.status_code == 202, response.text
    job = await wait_final(client, str(response.json()["id"]))
    assert job["status"] == "succeeded"
    return str(job["id"])


async def test_last_event_id_must_be_a_storable_decimal_id(client: httpx.AsyncClient) -> None:
    """Past int64 the stream used to answer 200 and then break mid-way; negative ids were accepted."""
    job_id = await finished_job(client)
    for bad in ("9223372036854775808", "99999999999999999999999", "-5", "+1", "1.0", " 1", "abc"):
        response = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": bad})
        assert_invalid(response, "Last-Event-ID")
    events = parse_sse((await client.get(f"/v1/jobs/{job_id}/events")).text)
    resumed = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "9223372036854775807"})
    assert resumed.status_code == 200 and parse_sse(resumed.text) == []
    assert events and events[-1][0] == "succeeded"


async def test_empty_result_format_is_400(client: httpx.AsyncClient) -> None:
    job_id = await finished_job(client)
    assert_invalid(await client.get(f"/v1/jobs/{job_id}/result?format="), "format")


async def test_a_page_side_past_leptonicas_limit_is_refused_at_submission(client: httpx.AsyncClient) -> None:
    """Used to be accepted, retried as a deterministic failure, then failed as recognition-failed (500)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (32768, 1), 255).save(buffer, format="PNG")
    response = await client.post("/v1/jobs", content=buffer.getvalue())
    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("/page-too-wide")
