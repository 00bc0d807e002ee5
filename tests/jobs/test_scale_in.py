"""Graceful scale-in with real processes on a real PostgreSQL: two `python -m ocr_service.jobs`
replicas, one gets SIGTERM while it holds a page (what a Deployment scaled in by KEDA or an HPA
sends). Within its grace period it either finishes the page or hands it back; every job still
succeeds exactly once, no page is recognised to completion twice, and no attempt is used up.

The lease is long (60 s) on purpose: a page that was only abandoned, not released, would wait
that long, so only the release explains the prompt finish of the short-grace case."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import pytest
from jobs_support import (
    WORDS,
    ChildProcess,
    children,
    job_settings,
    new_job,
    pdf,
    png,
    running_app,
    start_workers,
    words,
)

from ocr_service.contract import BACKLOG_SQL
from ocr_service.jobs.models import NewJob
from ocr_service.jobs.postgres import PostgresDatabase
from ocr_service.jobs.sqlstore import SqlJobStore
from ocr_service.options import OcrOptions, OutputFormat, PreprocessOptions

pytestmark = pytest.mark.xdist_group("jobs-processes")  # CPU-heavy: keep these on one xdist worker

FAST_OPTIONS = OcrOptions(lang="eng", preprocess=PreprocessOptions(mode="none"), format=OutputFormat.TEXT)
JOBS = 12
LINES = 16
"""Lines per page: a page takes a good fraction of a second, so the SIGTERM sent as soon as it is seen
running lands mid-page (a one-line page could finish inside the short grace, and be no release)."""
LEASE_SECONDS = "60"


def env_for(url: str, tmp_path: Path, grace: str) -> dict[str, str]:
    return {
        "OCR_DATABASE_URL": url,
        "OCR_DATA_DIR": str(tmp_path),
        "OCR_WORKERS": "1",
        "OCR_JOB_WORKERS": "1",
        "OCR_JOB_LEASE_SECONDS": LEASE_SECONDS,
        "OCR_JOB_MAX_ATTEMPTS": "1",  # a second counted attempt would show as attempts = 2 below
        "OCR_CACHE_TTL_SECONDS": "0",
        "OCR_SHUTDOWN_GRACE_SECONDS": grace,
        "OCR_DEFAULT_PREPROCESS": "none",
    }


async def sigterm_busy_worker(
    url: str, workers: list[ChildProcess], within: float = 30
) -> tuple[ChildProcess, tuple[str, int]]:
    """SIGTERM a worker process while it holds a page; return it and that page (job id, index)."""
    by_pid = {w.process.pid: w for w in workers}
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for row in await conn.fetch("SELECT job_id, idx, lease_owner FROM ocr_job_pages WHERE state = 'running'"):
                pid = int(str(row["lease_owner"]).split("-")[-3])
                if pid in by_pid:
                    by_pid[pid].process.send_signal(signal.SIGTERM)
                    return by_pid[pid], (str(row["job_id"]), int(row["idx"]))
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    raise AssertionError("no worker held a page")


@pytest.mark.parametrize(
    ("grace", "outcome"),
    [("0.01", "released"), ("30", "finished")],
    ids=["grace-over-mid-page-releases", "grace-long-enough-finishes"],
)
async def test_sigterm_mid_page_loses_nothing_and_completes_nothing_twice(
    postgres_url: str, tmp_path: Path, grace: str, outcome: str
) -> None:
    store = SqlJobStore(PostgresDatabase(postgres_url))
    await store.open()
    expected: dict[str, list[str]] = {}
    env = env_for(postgres_url, tmp_path, grace)
    try:
        with children() as started:
            started += [start_workers(env), start_workers(env)]
            for n in range(JOBS):  # submitted once both replicas are up, so both hold pages
                text = f"{WORDS[n % 10].capitalize()} page {n}"
                job, _ = await store.create_job(NewJob(png(text, lines=LINES), FAST_OPTIONS, (1,)))
                expected[job.id] = words(text) * LINES
            victim, held = await sigterm_busy_worker(postgres_url, started)
            victim_exit = await asyncio.to_thread(victim.process.wait, 40)
            async with asyncio.timeout(90):  # far less than the 60 s lease for a released page + the rest
                while (await store.stats()).jobs_by_state["succeeded"] < JOBS:
                    assert (await store.stats()).jobs_by_state["failed"] == 0
                    await asyncio.sleep(0.1)
        assert victim_exit == 0, victim.log_lines[-20:]
        for job_id, want in expected.items():
            results = await store.page_results(job_id, "text")
            assert results is not None and words(results[0].decode()) == want, job_id
        conn = await asyncpg.connect(postgres_url)
        try:
            finals = await conn.fetch(
                "SELECT job_id, count(*) AS n FROM ocr_job_events WHERE kind IN ('succeeded','failed','cancelled') "
                "GROUP BY job_id"
            )
            progress = await conn.fetch(
                "SELECT job_id, count(*) AS n FROM ocr_job_events WHERE kind = 'progress' GROUP BY job_id"
            )
            pages = await conn.fetch("SELECT state, attempts, finished_by FROM ocr_job_pages")
            held_by = await conn.fetchval(
                "SELECT finished_by FROM ocr_job_pages WHERE job_id = $1 AND idx = $2", held[0], held[1]
            )
        finally:
            await conn.close()
        assert len(finals) == JOBS and {row["n"] for row in finals} == {1}, "every job ends exactly once"
        assert {row["n"] for row in progress} == {1}, "no page is completed twice"
        assert {(row["state"], row["attempts"]) for row in pages} == {("done", 1)}, "no attempt used up"
        finished_by_victim = int(str(held_by).split("-")[-3]) == victim.process.pid
        log = "\n".join(victim.log_lines)
        if outcome == "released":
            assert not finished_by_victim, "the interrupted page was finished by the other replica"
            assert "released for another worker" in log, log[-2000:]
        else:
            assert finished_by_victim, "the page in progress was finished within the grace period"
            assert "released for another worker" not in log
    finally:
        await store.close()


async def test_a_released_page_is_queued_again_untried_and_counted_as_backlog(store: SqlJobStore) -> None:
    job, _ = await store.create_job(new_job(pages=2))
    page = await store.claim_page("worker-a", 30)
    assert page is not None and page.attempt == 1
    stats = await store.stats()
    assert (stats.queued_pages, stats.running_pages) == (1, 1)
    assert await store.release_page(page, "worker-b") is False, "only the lease holder may release"
    assert await store.release_page(page, "worker-a") is True
    assert await store.release_page(page, "worker-a") is False, "a released lease is gone"
    assert await store.renew_lease(page, "worker-a", 30) is False
    assert (await store.stats()).running_pages == 0
    again = await store.claim_page("worker-c", 30)
    assert again is not None and (again.index, again.attempt) == (page.index, 1), "first in line, attempt given back"
    events = [e.kind for e in await store.events_since(job.id, 0)]
    assert "retry" in events  # a work event: idle workers of every replica look at once


async def test_an_api_only_replica_stores_and_serves_jobs_but_claims_no_page(tmp_path: Path) -> None:
    async with running_app(job_settings(tmp_path, job_workers_enabled=False)) as client:
        response = await client.post("/v1/jobs", content=pdf(1), headers={"content-type": "application/pdf"})
        assert response.status_code == 202
        runtime = client.app.state.jobs  # type: ignore[attr-defined]
        assert runtime.workers is None
        await asyncio.sleep(1.0)  # longer than a worker's poll: nothing may claim it here
        assert (await client.get(f"/v1/jobs/{response.json()['id']}")).json()["status"] == "queued"
        await runtime.housekeeping.run_once()
        exposition = (await client.get("/metrics")).text
        assert "ocr_job_backlog_pages 1.0" in exposition
        assert "ocr_job_pages_in_progress 0.0" in exposition
        assert "ocr_job_worker_capacity 0.0" in exposition


async def test_the_keda_backlog_query_counts_what_the_store_reports(postgres_url: str) -> None:
    """`BACKLOG_SQL` is what KEDA's postgresql trigger runs against this very database."""
    store = SqlJobStore(PostgresDatabase(postgres_url))
    await store.open()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval(BACKLOG_SQL) == 0
        job, _ = await store.create_job(new_job(pages=3))
        await store.create_job(new_job(pages=2, key="other"))
        page = await store.claim_page("worker-a", 30)
        assert page is not None
        await store.complete_page(page, "worker-a", {"text": b"done"}, cached=False)
        await store.claim_page("worker-a", 30)  # one page in progress
        stats = await store.stats()
        assert (stats.queued_pages, stats.running_pages) == (3, 1)
        assert await conn.fetchval(BACKLOG_SQL) == 4, "queued and in progress, not done"
        await store.cancel_job(job.id)
        assert (
            await conn.fetchval(BACKLOG_SQL) == (await store.stats()).queued_pages + (await store.stats()).running_pages
        )
    finally:
        await conn.close()
        await store.close()
