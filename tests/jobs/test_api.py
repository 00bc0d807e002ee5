"""The jobs API end to end in-process, on SQLite and on real PostgreSQL: the whole lifecycle in
every output format, idempotency, cancel, server-sent progress, the cache, and precise 4xx answers."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pypdfium2
import pytest
from jobs_support import job_settings, page_words, parse_sse, pdf, png, running_app, text_image, wait_final, words

from ocr_service import metrics

PDF_TYPE = {"content-type": "application/pdf"}


@pytest.fixture(params=["sqlite", "postgresql"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    async with running_app(job_settings(tmp_path, database_url=url)) as running:
        yield running


async def submit(client: httpx.AsyncClient, document: bytes, **params: str) -> dict[str, object]:
    response = await client.post("/v1/jobs", content=document, headers=PDF_TYPE, params=params)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return dict(response.json())


def assert_pages_in_order(text: str, pages: int) -> None:
    got = words(text)
    positions = [got.index(words(page_words(n))[0]) for n in range(1, pages + 1)]
    assert positions == sorted(positions), text
    for n in range(1, pages + 1):
        assert str(n) in got


async def test_lifecycle_in_every_format(client: httpx.AsyncClient) -> None:
    document = pdf(3)
    created = await submit(client, document, format="text")
    assert created["status"] == "queued" and created["pages_total"] == 3
    job = await wait_final(client, str(created["id"]))
    assert job["status"] == "succeeded" and job["pages_done"] == 3 and job["error"] is None
    assert job["started_at"] and job["finished_at"] and not job["cached"]
    base = f"/v1/jobs/{job['id']}/result"

    default = await client.get(base)  # the format the job was submitted with
    assert default.headers["content-type"].startswith("text/plain")
    sync = await client.post("/v1/ocr", content=document, headers=PDF_TYPE, params={"format": "text"})
    assert default.text == sync.text  # the same engine, options and pages: the very same answer
    assert_pages_in_order(default.text, 3)

    result = (await client.get(base, params={"format": "json"})).json()
    assert [p["number"] for p in result["pages"]] == [1, 2, 3]
    assert result["cached"] is False and result["sha256"] == job["document_sha256"]
    assert_pages_in_order(result["text"], 3)
    assert all(page["blocks"] for page in result["pages"])

    hocr = (await client.get(base, params={"format": "hocr"})).text
    assert hocr.count("class='ocr_page'") == 3 and "Bravo" in hocr
    tsv = (await client.get(base, params={"format": "tsv"})).text
    assert {line.split("\t")[1] for line in tsv.splitlines()[1:] if line} == {"1", "2", "3"}
    assert "Charlie" in tsv
    alto = (await client.get(base, params={"format": "alto"})).text
    assert alto.count("<Page ") == 3 and 'CONTENT="Alpha"' in alto

    response = await client.get(base, params={"format": "pdf"})
    assert response.headers["content-type"] == "application/pdf"
    searchable = pypdfium2.PdfDocument(response.content)
    try:
        assert len(searchable) == 3
        layer = " ".join(searchable[i].get_textpage().get_text_range() for i in range(3))
    finally:
        searchable.close()
    assert_pages_in_order(layer, 3)


async def test_job_keeps_the_filename_and_its_result_negotiates_accept(client: httpx.AsyncClient) -> None:
    files = {"file": ("scans/Invoice 7.pdf", pdf(1), "application/pdf")}
    response = await client.post("/v1/jobs", files=files, params={"format": "text"})
    assert response.status_code == 202, response.text
    assert response.json()["filename"] == "Invoice 7.pdf", "the uploaded name, without its directories"
    job = await wait_final(client, str(response.json()["id"]))
    assert job["filename"] == "Invoice 7.pdf"
    base = f"/v1/jobs/{job['id']}/result"

    for accept, media_type in (
        ("application/pdf", "application/pdf"),
        ("text/html;q=0.5, application/json", "application/json"),
        ("*/*", "text/plain"),  # anything goes: the format chosen at submission
        (None, "text/plain"),
    ):
        headers = {"accept": accept} if accept is not None else {}
        result = await client.get(base, headers=headers)
        assert result.status_code == 200 and result.headers["content-type"].startswith(media_type), accept
    explicit = await client.get(base, params={"format": "tsv"}, headers={"accept": "application/pdf"})
    assert explicit.headers["content-type"].startswith("text/tab-separated-values"), "format= wins over Accept"
    refused = await client.get(base, headers={"accept": "image/png"})
    assert refused.status_code == 406 and refused.json()["type"].endswith("/not-acceptable")


async def test_resubmitting_a_document_is_answered_from_the_cache(client: httpx.AsyncClient) -> None:
    document = pdf(2, start=4)
    first = await wait_final(client, str((await submit(client, document))["id"]))
    assert first["status"] == "succeeded" and not first["cached"]
    hits = metrics.REGISTRY.get_sample_value("ocr_cache_lookups_total", {"result": "hit"}) or 0
    second = await wait_final(client, str((await submit(client, document))["id"]))
    assert second["cached"] and second["cached_pages"] == 2
    assert (metrics.REGISTRY.get_sample_value("ocr_cache_lookups_total", {"result": "hit"}) or 0) >= hits + 2
    result = await client.get(f"/v1/jobs/{second['id']}/result", params={"format": "json"})
    assert result.headers["x-cache"] == "hit" and result.json()["cached"] is True
    assert words(result.json()["text"]) == [*words(page_words(4)), *words(page_words(5))]


async def test_idempotency_key(client: httpx.AsyncClient) -> None:
    headers = {**PDF_TYPE, "Idempotency-Key": "order-4711"}
    first = await client.post("/v1/jobs", content=pdf(1), headers=headers)
    again = await client.post("/v1/jobs", content=pdf(1), headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/jobs", content=pdf(1, start=2), headers=headers)
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("/idempotency-key-reused")
    options_differ = await client.post("/v1/jobs", content=pdf(1), headers=headers, params={"psm": "6"})
    assert options_differ.status_code == 409
    bad = await client.post("/v1/jobs", content=pdf(1), headers={**PDF_TYPE, "Idempotency-Key": "x" * 300})
    assert bad.status_code == 400 and bad.json()["param"] == "Idempotency-Key"
    await wait_final(client, first.json()["id"])


async def test_cancel(client: httpx.AsyncClient) -> None:
    runtime = client.app.state.jobs  # type: ignore[attr-defined]
    await runtime.workers.stop()  # nothing recognises: the job stays queued until cancelled
    job = await submit(client, pdf(2))
    cancelled = await client.delete(f"/v1/jobs/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await client.delete(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"  # idempotent
    result = await client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 409 and result.json()["type"].endswith("/job-not-finished")
    assert "cancelled" in result.json()["detail"]
    events = parse_sse((await client.get(f"/v1/jobs/{job['id']}/events")).text)
    assert [kind for kind, _ in events] == ["queued", "cancelled"]
    assert (await client.delete("/v1/jobs/no-such-job")).status_code == 404


async def test_a_finished_job_cannot_be_cancelled(client: httpx.AsyncClient) -> None:
    job = await wait_final(client, str((await submit(client, pdf(1)))["id"]))
    response = await client.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 409 and response.json()["type"].endswith("/job-already-finished")


async def test_server_sent_events_follow_progress_to_the_end(client: httpx.AsyncClient) -> None:
    job = await submit(client, pdf(4))
    async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        raw = ""
        async with asyncio.timeout(60):
            async for chunk in stream.aiter_text():
                raw += chunk
    events = parse_sse(raw)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "queued" and kinds[-1] == "succeeded" and kinds.count("succeeded") == 1
    progress = [data["pages_done"] for kind, data in events if kind == "progress"]
    assert progress == [1, 2, 3, 4]
    assert sorted(data["page"] for kind, data in events if kind == "progress") == [1, 2, 3, 4]
    # resuming after the third event replays only what came later
    ids = [line[4:] for line in raw.splitlines() if line.startswith("id: ")]
    resumed = await client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": ids[2]})
    assert [kind for kind, _ in parse_sse(resumed.text)] == kinds[3:]
    async with asyncio.timeout(10):  # resuming after the final event ends at once instead of waiting forever
        after_end = await client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": ids[-1]})
    assert after_end.status_code == 200 and parse_sse(after_end.text) == []


async def test_bad_requests_get_precise_problems(client: httpx.AsyncClient) -> None:
    async def problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = dict(response.json())
        assert str(body["type"]).endswith("/" + slug), body
        return body

    await problem(await client.get("/v1/jobs/nope"), 404, "job-not-found")
    await problem(await client.get("/v1/jobs/nope/result"), 404, "job-not-found")
    await problem(await client.get("/v1/jobs/nope/events"), 404, "job-not-found")
    not_allowed = await client.post(
        "/v1/jobs", content=pdf(1), headers=PDF_TYPE, params={"callback_url": "http://169.254.169.254/latest"}
    )
    assert (await problem(not_allowed, 400, "callback-not-allowed"))["param"] == "callback_url"
    ftp = await client.post("/v1/jobs", content=pdf(1), headers=PDF_TYPE, params={"callback_url": "ftp://127.0.0.1/"})
    await problem(ftp, 400, "callback-not-allowed")
    await problem(
        await client.post("/v1/jobs", content=b"not a document", headers=PDF_TYPE), 415, "unsupported-media-type"
    )
    await problem(
        await client.post("/v1/jobs", content=pdf(1), headers=PDF_TYPE, params={"langs": "x"}), 400, "invalid-parameter"
    )
    await problem(
        await client.post("/v1/jobs", content=pdf(2), headers=PDF_TYPE, params={"pages": "5"}), 400, "invalid-parameter"
    )
    job = await wait_final(client, str((await submit(client, pdf(1)))["id"]))
    await problem(await client.get(f"/v1/jobs/{job['id']}/result", params={"format": "docx"}), 400, "invalid-parameter")
    await problem(await client.get(f"/v1/jobs/{job['id']}/result", params={"fmt": "text"}), 400, "invalid-parameter")
    await problem(
        await client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "abc"}), 400, "invalid-parameter"
    )


async def test_single_images_and_json_bodies_are_jobs_too(client: httpx.AsyncClient) -> None:
    import base64

    response = await client.post(
        "/v1/jobs", json={"content": base64.b64encode(png("Kilo Lima 42")).decode(), "format": "text"}
    )
    assert response.status_code == 202
    job = await wait_final(client, response.json()["id"])
    assert job["pages_total"] == 1
    text = (await client.get(f"/v1/jobs/{job['id']}/result")).text
    assert words(text) == ["kilo", "lima", "42"]


async def test_readiness_reports_the_job_store(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    backend = client.app.state.jobs.store.backend  # type: ignore[attr-defined]
    assert ready.json()["checks"][backend]["ok"] is True


async def test_metrics_show_jobs_queue_and_cache(client: httpx.AsyncClient) -> None:
    job = await wait_final(client, str((await submit(client, pdf(1, start=7)))["id"]))
    assert job["status"] == "succeeded"
    await client.app.state.jobs.housekeeping.run_once()  # type: ignore[attr-defined]
    exposition = (await client.get("/metrics")).text
    assert 'ocr_jobs{state="succeeded"}' in exposition
    succeeded = next(line for line in exposition.splitlines() if line.startswith('ocr_jobs{state="succeeded"}'))
    assert float(succeeded.rsplit(" ", 1)[1]) >= 1
    for name in (
        "ocr_job_queue_depth",
        "ocr_job_oldest_queued_page_age_seconds",
        'ocr_job_pages_total{outcome="done"}',
        "ocr_cache_lookups_total",
    ):
        assert name in exposition, name


async def test_finished_jobs_expire_after_the_retention_period(tmp_path: Path) -> None:
    async with running_app(job_settings(tmp_path, job_ttl_seconds=1)) as client:
        job = await wait_final(client, str((await submit(client, pdf(1)))["id"]))
        runtime = client.app.state.jobs  # type: ignore[attr-defined]
        await runtime.housekeeping.run_once()
        assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 200  # not yet
        await asyncio.sleep(1.2)
        await runtime.housekeeping.run_once()
        gone = await client.get(f"/v1/jobs/{job['id']}/result")
        assert gone.status_code == 404 and gone.json()["type"].endswith("/job-not-found")


def tiff_with_a_broken_first_page() -> bytes:
    """Two deflate-compressed TIFF frames whose first one's data is damaged: the header is fine
    (the job is accepted), decoding page 1 fails in the worker."""
    images = [text_image(page_words(1)), text_image(page_words(2))]
    buffer = io.BytesIO()
    images[0].save(buffer, format="TIFF", save_all=True, append_images=images[1:], compression="tiff_deflate")
    data = bytearray(buffer.getvalue())
    for i in range(10, 60):
        data[i] ^= 0x5A
    return bytes(data)


async def test_an_undecodable_page_fails_its_job_with_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/jobs", content=tiff_with_a_broken_first_page(), headers={"content-type": "image/tiff"}
    )
    assert response.status_code == 202
    job = await wait_final(client, response.json()["id"])
    assert job["status"] == "failed" and job["finished_at"]
    error = job["error"]
    assert error["type"].endswith("/undecodable-document") and error["status"] == 422 and error["page"] == 1
    assert error["detail"].startswith("page 1: ")
    events = parse_sse((await client.get(f"/v1/jobs/{job['id']}/events")).text)
    assert [kind for kind, _ in events].count("failed") == 1 and "retry" not in [kind for kind, _ in events]
    result = await client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 409 and "failed" in result.json()["detail"]


async def test_multipart_submissions_carry_options_and_callback_url_as_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/jobs",
        files={"file": ("scan.pdf", pdf(1, start=9), "application/pdf")},
        data={"format": "hocr", "psm": "6", "callback_url": "http://127.0.0.1:9/unused"},
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["options"]["format"] == "hocr" and created["options"]["psm"] == 6
    assert created["callback_url"] == "http://127.0.0.1:9/unused"
    job = await wait_final(client, created["id"])
    result = await client.get(f"/v1/jobs/{job['id']}/result")
    assert result.headers["content-type"].startswith("text/html") and "India" in result.text
    both = await client.post(
        "/v1/jobs", files={"file": ("scan.pdf", pdf(1), "application/pdf")}, data={"psm": "6"}, params={"psm": "6"}
    )
    assert both.status_code == 400 and both.json()["param"] == "psm"


async def test_sync_ocr_answers_repeats_from_the_cache(client: httpx.AsyncClient) -> None:
    image = png("Mike November 7")
    headers = {"content-type": "image/png"}
    first = await client.post("/v1/ocr", content=image, headers=headers)
    second = await client.post("/v1/ocr", content=image, headers=headers)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.json()["cached"] is False and second.json()["cached"] is True
    assert second.json()["text"] == first.json()["text"] and words(first.json()["text"]) == ["mike", "november", "7"]
    other_options = await client.post("/v1/ocr", content=image, headers=headers, params={"psm": "7"})
    assert other_options.headers["x-cache"] == "miss"  # options are part of the key
    as_text = await client.post("/v1/ocr", content=image, headers=headers, params={"format": "text"})
    again = await client.post("/v1/ocr", content=image, headers=headers, params={"format": "text"})
    assert (as_text.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit") and again.text == as_text.text
