"""Cancelling a running job: the DELETE answers at once and the page's recognition stops within a second.

Real job runtime, real Tesseract, SQLite and PostgreSQL stores. Limits have generous slack (the
suite shares its cores); they are far below the seconds the page would otherwise keep running.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from jobs_support import job_settings, running_app, text_image, wait_final
from PIL import Image

from ocr_service.jobs.runtime import JobRuntime
from ocr_service.pipeline import OcrPipeline

VOCABULARY = ["invoice", "total", "amount", "coffee", "bread", "butter", "milk", "cheese", "receipt", "paid"]


def dense_png(lines: int = 99) -> bytes:
    """A long page of varied words: recognising it takes several seconds."""
    rows = [" ".join(VOCABULARY[(row * 7 + col * 3) % len(VOCABULARY)] for col in range(9)) for row in range(lines)]
    line_images = [text_image(row, size=28) for row in rows]
    page = Image.new("L", (max(i.width for i in line_images), sum(i.height for i in line_images)), "white")
    top = 0
    for line in line_images:
        page.paste(line, (0, top))
        top += line.height
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["sqlite", "postgresql"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    # A long lease: before this change a cancelled page ran until its next heartbeat (a third of it).
    settings = job_settings(tmp_path, database_url=url, workers=1, job_workers=1, job_lease_seconds=30.0)
    async with running_app(settings) as running:
        yield running


async def test_deleting_a_running_job_answers_at_once_and_stops_its_page(client: httpx.AsyncClient) -> None:
    pipeline: OcrPipeline = client.app.state.pipeline  # type: ignore[attr-defined]
    runtime: JobRuntime = client.app.state.jobs  # type: ignore[attr-defined]
    assert runtime.workers is not None
    created = await client.post("/v1/jobs", content=dense_png(), headers={"content-type": "image/png"})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    for _ in range(1000):  # until the page is being recognised (at most ~10 s)
        if pipeline.stats().busy == 1:
            break
        await asyncio.sleep(0.01)
    assert pipeline.stats().busy == 1
    await asyncio.sleep(0.5)  # well into recognition, which takes seconds more
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "running"

    started = time.perf_counter()
    response = await client.delete(f"/v1/jobs/{job_id}")
    answered = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert answered < 1.0, f"DELETE took {answered:.2f} s"

    for _ in range(150):  # the engine worker and the job worker are idle within ~1.5 s
        if pipeline.stats().busy == 0 and runtime.workers.busy == 0:
            break
        await asyncio.sleep(0.01)
    stopped = time.perf_counter() - started
    assert pipeline.stats().busy == 0 and runtime.workers.busy == 0, f"still busy {stopped:.2f} s after DELETE"
    job = await wait_final(client, job_id, within=5)
    assert job["status"] == "cancelled" and job["pages_done"] == 0
