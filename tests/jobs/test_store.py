"""The job store's semantics, on real PostgreSQL and on SQLite: claiming, leases, attempts,
one final state per job, idempotency, cancel, events, retention and migrations."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import pytest
from jobs_support import STORE_DOC, finals, new_job

from ocr_service.jobs.errors import IdempotencyConflict, StoreUnavailable
from ocr_service.jobs.models import JobStatus
from ocr_service.jobs.postgres import PostgresDatabase, migrate
from ocr_service.jobs.schema import POSTGRES_MIGRATIONS
from ocr_service.jobs.sqlite import SqliteDatabase
from ocr_service.jobs.sqlstore import SqlJobStore


async def test_lifecycle_claims_every_page_once_and_finishes_once(store: SqlJobStore) -> None:
    job, created = await store.create_job(new_job(pages=3))
    assert created and job.status is JobStatus.QUEUED and job.pages_total == 3
    assert await store.load_input(job.id) == STORE_DOC

    claimed = [await store.claim_page("w1", 30) for _ in range(3)]
    assert await store.claim_page("w1", 30) is None
    assert sorted(p.page_number for p in claimed if p) == [1, 2, 3]
    assert (await store.get_job(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]

    for page in reversed([p for p in claimed if p]):
        assert await store.complete_page(page, "w1", {"text": f"page {page.page_number}".encode()}, cached=False)
    done = await store.get_job(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.pages_done == 3
    assert done.finished_at is not None and done.started_at is not None
    assert await store.page_results(job.id, "text") == [b"page 1", b"page 2", b"page 3"]
    assert await store.load_input(job.id) == STORE_DOC  # kept: the PDF is rendered from it on first request
    kinds = [e.kind for e in await store.events_since(job.id, 0)]
    assert kinds == ["queued", "running", "progress", "progress", "progress", "succeeded"]


async def test_results_are_refused_after_the_lease_is_lost(store: SqlJobStore) -> None:
    job, _ = await store.create_job(new_job(pages=1))
    first = await store.claim_page("w1", 0.05)
    assert first is not None
    await asyncio.sleep(0.2)
    outcome = await store.reap_expired_leases(max_attempts=3)
    assert outcome.requeued == 1 and outcome.failed_jobs == 0
    assert not await store.renew_lease(first, "w1", 30)  # reclaimed: the old worker must let go
    second = await store.claim_page("w2", 30)
    assert second is not None and second.attempt == 2
    assert not await store.complete_page(first, "w1", {"text": b"stale"}, cached=False)
    assert await store.complete_page(second, "w2", {"text": b"fresh"}, cached=False)
    assert await store.page_results(job.id, "text") == [b"fresh"]
    assert await finals(store, job.id) == ["succeeded"]


async def test_a_page_that_keeps_losing_its_worker_fails_the_job_with_a_reason(store: SqlJobStore) -> None:
    job, _ = await store.create_job(new_job(pages=2))
    for _ in range(2):
        page = await store.claim_page("doomed", 0.01)
        assert page is not None and page.page_number == 1
        await asyncio.sleep(0.05)
        await store.reap_expired_leases(max_attempts=2)
    failed = await store.get_job(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error is not None and "page 1" in failed.error["detail"] and failed.error["page"] == 1
    assert await store.claim_page("w", 30) is None  # the other page is not worked on any more
    assert await finals(store, job.id) == ["failed"]


async def test_failed_attempts_retry_then_fail(store: SqlJobStore) -> None:
    job, _ = await store.create_job(new_job(pages=1))
    problem = {"type": "about:blank", "title": "Engine error", "status": 500, "detail": "boom"}
    page = await store.claim_page("w", 30)
    assert page is not None
    await store.fail_page(page, "w", problem, retry=True, max_attempts=2)
    assert (await store.get_job(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]
    page = await store.claim_page("w", 30)
    assert page is not None and page.attempt == 2
    await store.fail_page(page, "w", problem, retry=True, max_attempts=2)
    failed = await store.get_job(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error == {**problem, "detail": "page 1: boom", "page": 1}


async def test_idempotency_key_returns_the_same_job_or_conflicts(store: SqlJobStore) -> None:
    first, created = await store.create_job(new_job(key="abc"))
    again, created_again = await store.create_job(new_job(key="abc"))
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        await store.create_job(new_job(key="abc", document=b"another document"))
    other, _ = await store.create_job(new_job(key="def"))
    assert other.id != first.id


async def test_cancel_stops_work_and_is_final_once(store: SqlJobStore) -> None:
    job, _ = await store.create_job(new_job(pages=3))
    running = await store.claim_page("w", 30)
    assert running is not None
    cancelled = await store.cancel_job(job.id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert await store.claim_page("w", 30) is None
    assert not await store.renew_lease(running, "w", 30)  # the worker learns it at its next heartbeat
    assert not await store.complete_page(running, "w", {"text": b"late"}, cached=False)
    again = await store.cancel_job(job.id)
    assert again is not None and again.status is JobStatus.CANCELLED
    assert await store.cancel_job("no-such-job") is None
    assert await finals(store, job.id) == ["cancelled"]
    assert await store.page_results(job.id, "text") is None


async def test_stats_retention_and_callbacks(store: SqlJobStore) -> None:
    queued, _ = await store.create_job(new_job(pages=2))
    finished, _ = await store.create_job(new_job(pages=1, callback_url="http://127.0.0.1:9/hook"))
    stats = await store.stats()
    assert stats.jobs_by_state["queued"] == 2 and stats.queued_pages == 3
    assert stats.oldest_queued_age_seconds >= 0
    await store.cancel_job(finished.id)

    task = await store.claim_callback(lease_seconds=30)
    assert task is not None and task.job_id == finished.id and task.attempts == 1
    assert await store.claim_callback(lease_seconds=30) is None  # hidden while one replica delivers it
    assert await store.delete_expired(0) == 0  # an undelivered callback keeps its job
    await store.finish_callback(finished.id, delivered=True, retry_in=None, error=None)
    await asyncio.sleep(0.05)
    assert await store.delete_expired(0) == 1
    assert await store.get_job(finished.id) is None
    assert await store.get_job(queued.id) is not None  # unfinished jobs never expire


@pytest.mark.parametrize("claimers", [8])
async def test_concurrent_claims_never_hand_out_a_page_twice(store: SqlJobStore, claimers: int) -> None:
    await store.create_job(new_job(pages=40))

    async def claim_all(owner: str) -> list[int]:
        got = []
        while (page := await store.claim_page(owner, 30)) is not None:
            got.append(page.index)
        return got

    results = await asyncio.gather(*(claim_all(f"w{i}") for i in range(claimers)))
    everything = [i for r in results for i in r]
    assert sorted(everything) == list(range(40))


async def test_two_stores_on_one_postgres_split_pages(postgres_url: str) -> None:
    stores = [SqlJobStore(PostgresDatabase(postgres_url)) for _ in range(2)]
    await asyncio.gather(*(s.open() for s in stores))  # concurrent migration under the advisory lock
    try:
        job, _ = await stores[0].create_job(new_job(pages=30))

        async def drain(s: SqlJobStore, owner: str) -> list[int]:
            got = []
            while (page := await s.claim_page(owner, 30)) is not None:
                got.append(page.index)
                await asyncio.sleep(0.005)
                assert await s.complete_page(page, owner, {"text": b"x"}, cached=False)
            return got

        a, b = await asyncio.gather(drain(stores[0], "a"), drain(stores[1], "b"))
        assert sorted(a + b) == list(range(30)) and a and b
        assert (await stores[1].get_job(job.id)).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
        assert await finals(stores[1], job.id) == ["succeeded"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_migrations_are_versioned_and_applied_once(postgres_url: str) -> None:
    conns = [await asyncpg.connect(postgres_url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        versions = [version for version, _ in POSTGRES_MIGRATIONS]
        assert sorted(v for a in applied for v in a) == versions == [1, 2]
        assert await migrate(conns[0]) == []
        assert await conns[0].fetchval("SELECT count(*) FROM ocr_schema_migrations") == len(versions)
    finally:
        for c in conns:
            await c.close()


async def test_a_session_the_server_terminates_mid_transaction_is_unavailable_and_the_pool_recovers(
    postgres_url: str,
) -> None:
    """What a PostgreSQL restart does to a request in flight: a 503-able StoreUnavailable, never a raw
    asyncpg error (which became a 500), and the next transaction gets a working connection."""
    store = SqlJobStore(PostgresDatabase(postgres_url))
    await store.open()
    admin = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(StoreUnavailable):
            async with store.db.transaction() as tx:
                session = await tx.fetchrow("SELECT pg_backend_pid() AS pid")
                assert session is not None
                await admin.execute("SELECT pg_terminate_backend($1)", session["pid"])
                await tx.execute("SELECT 1")
        job, created = await store.create_job(new_job())
        assert created and (await store.get_job(job.id)) is not None
    finally:
        await admin.close()
        await store.close()


async def test_a_transaction_cancelled_at_any_point_never_returns_its_connection_to_the_pool(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancellation (a worker stopped mid-claim, a client gone) can land during BEGIN, a statement or
    COMMIT. A connection it interrupted must be closed, not pooled mid-transaction: asyncpg then
    has to roll it back on release and logs "Resetting connection with an active transaction"."""
    store = SqlJobStore(PostgresDatabase(postgres_url))
    await store.open()
    delays = random.Random(7)

    async def short_transaction() -> None:
        async with store.db.transaction() as tx:
            await tx.fetchrow("SELECT 1 AS one")

    try:
        for _ in range(200):  # cancelled at random points of BEGIN, SELECT and COMMIT (about 1 s in all)
            task = asyncio.create_task(short_transaction())
            await asyncio.sleep(delays.uniform(0, 0.004))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        job, created = await store.create_job(new_job())
        assert created and (await store.get_job(job.id)) is not None
    finally:
        await store.close()
    reset_by_asyncpg = "Resetting connection with an active transaction"
    assert [r.getMessage() for r in caplog.records if reset_by_asyncpg in r.getMessage()] == []


async def test_an_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = SqlJobStore(SqliteDatabase(blocker / "jobs.sqlite3"))
    with pytest.raises(StoreUnavailable, match="OCR_DATA_DIR"):
        await store.open()


async def test_the_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    """WAL lets readers (status polls, SSE) proceed while a worker writes, and survives crashes."""
    import sqlite3

    store = SqlJobStore(SqliteDatabase(tmp_path / "jobs.sqlite3"))
    await store.open()
    try:
        await store.create_job(new_job())
        with sqlite3.connect(tmp_path / "jobs.sqlite3") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM ocr_jobs").fetchone()[0] == 1  # committed, visible outside
    finally:
        await store.close()
