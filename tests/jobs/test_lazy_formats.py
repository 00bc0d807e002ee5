"""The searchable PDF of a job is rendered on first request, not by every page: then stored and reused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pypdfium2
import pytest
from jobs_support import job_settings, page_words, pdf, running_app, wait_final, words

from ocr_service.jobs.runtime import JobRuntime


@pytest.fixture(params=["sqlite", "postgresql"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    # The result cache off: the second fetch must come from the stored parts, not a cached body.
    async with running_app(job_settings(tmp_path, database_url=url, cache_ttl_seconds=0)) as running:
        yield running


async def test_pdf_is_rendered_on_first_request_then_stored(client: httpx.AsyncClient) -> None:
    runtime: JobRuntime = client.app.state.jobs  # type: ignore[attr-defined]
    created = await client.post("/v1/jobs", content=pdf(2), headers={"content-type": "application/pdf"})
    assert created.status_code == 202, created.text
    job = await wait_final(client, created.json()["id"])
    assert job["status"] == "succeeded"
    assert await runtime.store.page_results(job["id"], "alto") is not None  # eager formats are stored
    assert await runtime.store.page_results(job["id"], "pdf") is None  # the PDF was not rendered

    first = await client.get(f"/v1/jobs/{job['id']}/result", params={"format": "pdf"})
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/pdf"
    document = pypdfium2.PdfDocument(first.content)
    try:
        assert len(document) == 2
        layer = [document[i].get_textpage().get_text_range() for i in range(2)]
    finally:
        document.close()
    for number, text in enumerate(layer, start=1):
        assert words(page_words(number)) == words(text)[: len(words(page_words(number)))], text

    stored = await runtime.store.page_results(job["id"], "pdf")
    assert stored is not None and len(stored) == 2
    recognised = 0
    run_page = runtime.pipeline.run_page

    async def counting(*args: Any, **kwargs: Any) -> Any:  # a spy: the real pipeline still does the work
        nonlocal recognised
        recognised += 1
        return await run_page(*args, **kwargs)

    runtime.pipeline.run_page = counting  # type: ignore[method-assign]
    again = await client.get(f"/v1/jobs/{job['id']}/result", params={"format": "pdf"})
    assert again.status_code == 200 and again.content.startswith(b"%PDF")
    assert recognised == 0, "the second fetch merges the stored parts"
    assert await runtime.store.page_results(job["id"], "pdf") == stored
