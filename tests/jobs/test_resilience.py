"""Backends going away and coming back: PostgreSQL and Redis restarted under load (no accepted
job lost, readiness flips and recovers, sync OCR keeps working), and the SQLite default keeping
queued and half-done jobs across a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from jobs_servers import PostgresServer, RedisServer
from jobs_support import job_settings, page_words, pdf, png, running_app, wait_final, words

PDF_TYPE = {"content-type": "application/pdf"}


async def until(predicate_name: str, check: object, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{predicate_name} did not happen within {within}s"
        await asyncio.sleep(0.2)


@pytest.mark.xdist_group("jobs-processes")
async def test_postgres_and_redis_restarts_lose_no_accepted_job(
    tmp_path: Path, own_postgres: PostgresServer, own_redis: RedisServer
) -> None:
    settings = job_settings(tmp_path, database_url=own_postgres.create_database(), redis_url=own_redis.url)
    accepted: dict[str, int] = {}
    async with running_app(settings) as client:

        async def submit(start: int) -> httpx.Response:
            response = await client.post("/v1/jobs", content=pdf(2, start=start), headers=PDF_TYPE)
            if response.status_code == 202:
                accepted[response.json()["id"]] = start
            return response

        for start in range(1, 6):
            assert (await submit(start)).status_code == 202

        own_redis.stop()
        sync = await client.post("/v1/ocr", content=png("Redis is down"), headers={"content-type": "image/png"})
        assert sync.status_code == 200 and sync.headers["x-cache"] == "miss"
        assert (await client.get("/readyz")).status_code == 200  # the cache is optional

        outcomes: list[int] = []  # status of each submission made by the steady load, in order
        load_done = asyncio.Event()

        async def steady_load() -> None:
            """One submission every 50 ms until told to stop (bounded): some refused (503), none lost."""
            for n in range(600):
                if load_done.is_set():
                    return
                response = await submit(20 + n % 5)
                assert response.status_code in (202, 503), response.text
                outcomes.append(response.status_code)
                await asyncio.sleep(0.05)

        async def load_saw(status: int, after: int = 0) -> bool:
            if load.done():
                load.result()  # the load failed (e.g. a 500): say so instead of waiting in vain
            return status in outcomes[after:]

        load = asyncio.create_task(steady_load())
        await until("a submission accepted before the outage", lambda: load_saw(202))
        await asyncio.to_thread(own_postgres.stop)  # in a thread: the load keeps running meanwhile
        refused = await submit(6)
        assert refused.status_code == 503 and refused.json()["type"].endswith("/jobs-unavailable")
        assert refused.headers["retry-after"]
        assert (await client.get(f"/v1/jobs/{next(iter(accepted))}")).status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["postgresql"]["ok"] is False
        sync = await client.post("/v1/ocr", content=png("Still recognising"), headers={"content-type": "image/png"})
        assert sync.status_code == 200 and words(sync.json()["text"]) == ["still", "recognising"]
        await until("the load refused during the outage", lambda: load_saw(503))

        restarted_at = len(outcomes)
        await asyncio.to_thread(own_postgres.start)
        await asyncio.to_thread(own_redis.start)
        await until("the load accepted again after the restart", lambda: load_saw(202, after=restarted_at))
        load_done.set()
        await load
        accepted_under_load = outcomes.count(202)

        async def ready_again() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await until("readiness recovery", ready_again)
        for start in range(6, 9):
            assert (await submit(start)).status_code == 202
        for job_id, start in accepted.items():
            job = await wait_final(client, job_id, within=60)
            assert job["status"] == "succeeded", job
            text = (await client.get(f"/v1/jobs/{job_id}/result", params={"format": "text"})).text
            assert words(text) == [*words(page_words(start)), *words(page_words(start + 1))]

        async def cache_hits() -> bool:
            response = await client.post("/v1/ocr", content=png("Cache is back"), headers={"content-type": "image/png"})
            return response.headers["x-cache"] == "hit"

        await until("the Redis cache answering again", cache_hits)
    assert len(accepted) == 8 + accepted_under_load


async def test_sqlite_default_keeps_queued_and_half_done_jobs_across_a_restart(tmp_path: Path) -> None:
    settings = job_settings(tmp_path, job_lease_seconds=1.0)  # no OCR_DATABASE_URL: SQLite in the data dir
    async with running_app(settings) as client:
        runtime = client.app.state.jobs  # type: ignore[attr-defined]
        await runtime.workers.stop()  # accepted, not yet worked on, when the process goes away
        ids = []
        for start in (1, 3, 5):
            response = await client.post("/v1/jobs", content=pdf(2, start=start), headers=PDF_TYPE)
            assert response.status_code == 202
            ids.append(response.json()["id"])
        # a worker that claimed a page and then died with the process: its lease will expire
        abandoned = await runtime.store.claim_page("worker-that-died", 1.0)
        assert abandoned is not None
    assert (tmp_path / "jobs.sqlite3").exists()

    async with running_app(settings) as client:
        for job_id, start in zip(ids, (1, 3, 5), strict=True):
            job = await wait_final(client, job_id, within=60)
            assert job["status"] == "succeeded", job
            text = (await client.get(f"/v1/jobs/{job_id}/result")).json()["text"]
            assert words(text) == [*words(page_words(start)), *words(page_words(start + 1))]
