"""`python -m ocr_service.jobs` as Kubernetes runs it: probes and metrics over HTTP, no API.

A real worker process on a real PostgreSQL. Its readiness is the API pods' own (engine,
languages, job store), so stopping PostgreSQL turns it 503 naming the store while liveness stays
200 (a lost database must not get every worker pod restarted), and starting it again brings it
back; `/metrics` counts the pages it recognised; API routes are not there at all.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from jobs_servers import PostgresServer
from jobs_support import children, png, start_workers, words
from test_scale_in import FAST_OPTIONS

from ocr_service.jobs.models import NewJob
from ocr_service.jobs.postgres import PostgresDatabase
from ocr_service.jobs.sqlstore import SqlJobStore

pytestmark = pytest.mark.xdist_group("jobs-processes")


async def poll(what: str, check: Callable[[], Awaitable[bool]], tries: int) -> None:
    """`check()` every 0.2 s (at most `tries` times) until it holds."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{what}: not within {tries * 0.2:g} s")


def metric(exposition: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", exposition, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def test_worker_replica_probes_metrics_and_no_api(own_postgres: PostgresServer, tmp_path: Path) -> None:
    url = own_postgres.create_database()
    env = {
        "OCR_DATABASE_URL": url,
        "OCR_DATA_DIR": str(tmp_path),
        "OCR_WORKERS": "1",
        "OCR_JOB_WORKERS": "2",
        "OCR_CACHE_TTL_SECONDS": "0",
        "OCR_DEFAULT_PREPROCESS": "none",
    }
    store = SqlJobStore(PostgresDatabase(url))
    await store.open()
    try:
        with children() as started:
            worker = start_workers(env)
            started.append(worker)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}", timeout=10) as client:
                assert (await client.get("/livez")).status_code == 200
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert {name for name, check in ready.json()["checks"].items() if check["ok"]} == {
                    "engine",
                    "languages",
                    "postgresql",
                }
                exposition = (await client.get("/metrics")).text
                assert metric(exposition, "ocr_job_worker_capacity") == 2
                done_before = re.search(r'^ocr_job_pages_total\{outcome="done"\} ([0-9.]+)$', exposition, re.M)
                assert done_before is None or float(done_before.group(1)) == 0

                for path, method in (("/v1/ocr", "POST"), ("/v1/jobs", "GET"), ("/demo", "GET"), ("/docs", "GET")):
                    answer = await client.request(method, path)
                    assert answer.status_code == 404, (path, answer.status_code)
                    assert answer.headers["content-type"].startswith("application/problem+json")

                job, _ = await store.create_job(NewJob(png("Worker replica page"), FAST_OPTIONS, (1,)))

                async def succeeded() -> bool:
                    current = await store.get_job(job.id)
                    return current is not None and current.status.value == "succeeded"

                await poll("the job succeeds", succeeded, tries=600)
                results = await store.page_results(job.id, "text")
                assert results is not None and words(results[0].decode()) == words("Worker replica page")
                exposition = (await client.get("/metrics")).text
                assert 'ocr_job_pages_total{outcome="done"} 1.0' in exposition

                await store.close()
                await asyncio.to_thread(own_postgres.stop)
                lost = await client.get("/readyz")
                assert lost.status_code == 503, lost.text
                assert lost.headers["content-type"].startswith("application/problem+json")
                assert not lost.json()["checks"]["postgresql"]["ok"]
                assert lost.json()["checks"]["engine"]["ok"]
                assert (await client.get("/livez")).status_code == 200

                await asyncio.to_thread(own_postgres.start)

                async def ready_again() -> bool:
                    return (await client.get("/readyz")).status_code == 200

                await poll("ready again once PostgreSQL is back", ready_again, tries=150)
                assert worker.process.poll() is None
    finally:
        await store.close()
