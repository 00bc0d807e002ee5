"""Crash safety with real processes on a real PostgreSQL: job workers SIGKILLed mid-page, two
service replicas sharing one document, and the issue's "done" scenario (a 20-page PDF through
/v1/jobs with progress events while workers are being killed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from jobs_support import (
    WORDS,
    ChildProcess,
    children,
    page_words,
    parse_sse,
    pdf,
    png,
    start_server,
    start_workers,
    words,
)

from ocr_service.jobs.models import NewJob
from ocr_service.jobs.postgres import PostgresDatabase
from ocr_service.jobs.sqlstore import SqlJobStore
from ocr_service.options import OcrOptions, OutputFormat, PreprocessOptions

pytestmark = pytest.mark.xdist_group("jobs-processes")  # CPU-heavy: keep these on one xdist worker

FAST_OPTIONS = OcrOptions(lang="eng", preprocess=PreprocessOptions(mode="none"), format=OutputFormat.TEXT)


def worker_env(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "OCR_DATABASE_URL": url,
        "OCR_DATA_DIR": str(tmp_path),
        "OCR_WORKERS": "1",
        "OCR_JOB_WORKERS": "2",
        "OCR_JOB_LEASE_SECONDS": "1.5",
        "OCR_JOB_MAX_ATTEMPTS": "20",
        "OCR_CACHE_TTL_SECONDS": "0",  # every attempt really recognises
        "OCR_SHUTDOWN_GRACE_SECONDS": "1",
        "OCR_DEFAULT_PREPROCESS": "none",
        **extra,
    }


async def kill_busy_worker(url: str, workers: list[ChildProcess], within: float = 20) -> ChildProcess | None:
    """SIGKILL a worker process while it holds a page (found by the pid in the page's lease owner)."""
    by_pid = {w.process.pid: w for w in workers if w.process.poll() is None}
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            owners = await conn.fetch("SELECT lease_owner FROM ocr_job_pages WHERE state = 'running'")
            for row in owners:
                pid = int(str(row["lease_owner"]).split("-")[-3])
                if pid in by_pid:
                    by_pid[pid].kill()
                    return by_pid[pid]
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    return None


async def diagnose(url: str, started: list[ChildProcess]) -> str:
    """What the queue and the processes look like, for a failure message."""
    conn = await asyncpg.connect(url)
    try:
        pages = await conn.fetch(
            "SELECT state, attempts, lease_owner, lease_expires_at < now() AS expired, count(*) AS n "
            "FROM ocr_job_pages WHERE state <> 'done' GROUP BY 1, 2, 3, 4"
        )
        locks = await conn.fetch("SELECT pid, state, wait_event, left(query, 80) AS q FROM pg_stat_activity")
    finally:
        await conn.close()
    alive = [(c.process.pid, c.process.poll()) for c in started]
    return f"pages not done: {[dict(r) for r in pages]}\nsessions: {[dict(r) for r in locks]}\nprocesses: {alive}"


async def one_final_event_per_job(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT j.id, count(e.id) AS n FROM ocr_jobs j LEFT JOIN ocr_job_events e ON e.job_id = j.id "
            "AND e.kind IN ('succeeded', 'failed', 'cancelled') GROUP BY j.id"
        )
        return {row["id"]: int(row["n"]) for row in rows}
    finally:
        await conn.close()


async def test_sigkilled_workers_lose_no_page(postgres_url: str, tmp_path: Path) -> None:
    store = SqlJobStore(PostgresDatabase(postgres_url))
    await store.open()
    expected: dict[str, list[str]] = {}
    # Enough pages that the workers are still busy after 3 kills and restarts (job pages got
    # faster when they stopped rendering the PDF up front; 60 were sometimes all done by then).
    for n in range(120):
        text = f"{WORDS[n % 10].capitalize()} number {n}"
        job, _ = await store.create_job(NewJob(png(text), FAST_OPTIONS, (1,)))
        expected[job.id] = words(text)
    env = worker_env(postgres_url, tmp_path)
    kills = 0
    with children() as started:
        started += [start_workers(env), start_workers(env)]
        for _ in range(4):
            victim = await kill_busy_worker(postgres_url, started)
            if victim is None:
                break
            kills += 1
            started.append(start_workers(env, wait=False))  # a replacement, as an orchestrator would start
        try:
            async with asyncio.timeout(120):
                while (await store.stats()).jobs_by_state["succeeded"] < len(expected):
                    stats = await store.stats()
                    assert stats.jobs_by_state["failed"] == 0 and stats.jobs_by_state["cancelled"] == 0
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(await diagnose(postgres_url, started)) from None
    try:
        assert kills >= 3
        for job_id, want in expected.items():
            results = await store.page_results(job_id, "text")
            assert results is not None and words(results[0].decode()) == want, job_id
        assert set((await one_final_event_per_job(postgres_url)).values()) == {1}
        conn = await asyncpg.connect(postgres_url)
        retried = await conn.fetchval("SELECT count(*) FROM ocr_job_pages WHERE attempts > 1")
        await conn.close()
        assert retried >= 1  # pages held by a killed worker were reclaimed and done again
    finally:
        await store.close()


async def test_two_service_processes_split_one_document(postgres_url: str, tmp_path: Path) -> None:
    """The replica that took the submission starts at once; the other finds the pages at its next
    poll (0.5 s), so the document must outlast one poll even on a fast machine."""
    pages = 30
    env = worker_env(postgres_url, tmp_path, OCR_JOB_WORKERS="1")
    with children() as started:
        started += [start_server(env), start_server(env)]
        first, second = started
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{first.base_url}/v1/jobs", content=pdf(pages), headers={"content-type": "application/pdf"}
            )
            assert response.status_code == 202
            job_id = response.json()["id"]
            async with asyncio.timeout(90):
                while (job := (await client.get(f"{second.base_url}/v1/jobs/{job_id}")).json())[
                    "status"
                ] != "succeeded":
                    assert job["status"] in ("queued", "running")
                    await asyncio.sleep(0.2)
            text = (await client.get(f"{second.base_url}/v1/jobs/{job_id}/result", params={"format": "text"})).text
    assert words(text) == [w for n in range(1, pages + 1) for w in words(page_words(n))]
    conn = await asyncpg.connect(postgres_url)
    finishers = [row["finished_by"] for row in await conn.fetch("SELECT finished_by FROM ocr_job_pages")]
    await conn.close()
    pids = {int(owner.split("-")[-3]) for owner in finishers}
    assert pids == {first.process.pid, second.process.pid}, finishers


async def test_twenty_page_pdf_with_progress_while_workers_are_killed(postgres_url: str, tmp_path: Path) -> None:
    env = worker_env(postgres_url, tmp_path, OCR_JOB_WORKERS="1")
    with children() as started:
        server = start_server(env)
        started += [server, start_workers(env), start_workers(env)]
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            response = await client.post("/v1/jobs", content=pdf(20), headers={"content-type": "application/pdf"})
            assert response.status_code == 202
            job_id = response.json()["id"]

            async def follow() -> str:
                raw = ""
                async with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=120) as stream:
                    async for chunk in stream.aiter_text():
                        raw += chunk
                return raw

            async with asyncio.timeout(150):
                events_task = asyncio.create_task(follow())
                kills = 0
                for _ in range(3):
                    workers = [c for c in started if c is not server]
                    if events_task.done() or await kill_busy_worker(postgres_url, workers, within=5) is None:
                        break
                    kills += 1
                    started.append(start_workers(env))
                raw = await events_task
            text = (await client.get(f"/v1/jobs/{job_id}/result", params={"format": "text"})).text
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
    events = parse_sse(raw)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "succeeded" and kinds.count("succeeded") == 1 and "failed" not in kinds
    assert [data["pages_done"] for kind, data in events if kind == "progress"] == list(range(1, 21))
    assert sorted(data["page"] for kind, data in events if kind == "progress") == list(range(1, 21))
    assert kills >= 1 and "retry" in kinds  # a killed worker's page went back to the queue
    assert job["status"] == "succeeded" and job["pages_done"] == 20
    assert words(text) == [w for n in range(1, 21) for w in words(page_words(n))]
