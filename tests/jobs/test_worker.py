"""The page workers' own rules, on both real stores, with a stand-in for the engine (the engine
is not what is under test here; the end-to-end tests use the real one): engine failures are
retried up to the attempt limit, a job cancelled mid-page is abandoned at the next heartbeat,
and cached pages are not recognised again."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ocr_service.cache import MemoryCache
from ocr_service.jobs.models import JobStatus, NewJob
from ocr_service.jobs.sqlstore import SqlJobStore
from ocr_service.jobs.worker import JobWorkers, pack_page, unpack_page
from ocr_service.options import OcrOptions


def workers(store: SqlJobStore, recognize: object, cache: MemoryCache | None = None, **kw: object) -> JobWorkers:
    options: dict[str, object] = {"concurrency": 1, "lease_seconds": 0.3, "max_attempts": 3, "poll_seconds": 0.02}
    options.update(kw)
    return JobWorkers(
        store,
        recognize,  # type: ignore[arg-type]
        cache or MemoryCache(0, 0, 1),
        engine_version="test",
        **options,  # type: ignore[arg-type]
    )


async def final(store: SqlJobStore, job_id: str) -> JobStatus:
    async with asyncio.timeout(20):
        while True:
            job = await store.get_job(job_id)
            if job is not None and job.is_final:
                return job.status
            await asyncio.sleep(0.02)


async def test_engine_failures_are_retried_then_succeed(store: SqlJobStore) -> None:
    calls = 0

    async def flaky(data: bytes, page: int, options: OcrOptions) -> Mapping[str, bytes]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("engine crashed")
        return {"text": b"ok"}

    job, _ = await store.create_job(NewJob(b"doc", OcrOptions(), (1,)))
    pool = workers(store, flaky)
    pool.start()
    try:
        assert await final(store, job.id) is JobStatus.SUCCEEDED
    finally:
        await pool.stop()
    assert calls == 3
    kinds = [e.kind for e in await store.events_since(job.id, 0)]
    assert kinds.count("retry") == 2 and kinds[-1] == "succeeded"


async def test_a_page_that_always_crashes_the_engine_fails_its_job(store: SqlJobStore) -> None:
    async def broken(data: bytes, page: int, options: OcrOptions) -> Mapping[str, bytes]:
        raise RuntimeError("segfault-ish")

    job, _ = await store.create_job(NewJob(b"doc", OcrOptions(), (1, 2)))
    pool = workers(store, broken)
    pool.start()
    try:
        assert await final(store, job.id) is JobStatus.FAILED
    finally:
        await pool.stop()
    failed = await store.get_job(job.id)
    assert failed is not None and failed.error is not None
    assert failed.error["type"].endswith("/recognition-failed") and "RuntimeError" in failed.error["detail"]


async def test_cancelling_mid_page_abandons_the_recognition(store: SqlJobStore) -> None:
    started, abandoned = asyncio.Event(), asyncio.Event()

    async def slow(data: bytes, page: int, options: OcrOptions) -> Mapping[str, bytes]:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            abandoned.set()
            raise
        return {"text": b"too late"}

    job, _ = await store.create_job(NewJob(b"doc", OcrOptions(), (1,)))
    pool = workers(store, slow)
    pool.start()
    try:
        async with asyncio.timeout(10):
            await started.wait()
            await store.cancel_job(job.id)
            await abandoned.wait()  # the next heartbeat (a third of the lease) notices
    finally:
        await pool.stop()
    assert (await store.get_job(job.id)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_cached_pages_are_not_recognised_again(store: SqlJobStore) -> None:
    calls = 0

    async def engine(data: bytes, page: int, options: OcrOptions) -> Mapping[str, bytes]:
        nonlocal calls
        calls += 1
        return {"page": b"{}", "text": f"page {page}".encode()}

    cache = MemoryCache(100, 10_000, 60)
    pool = workers(store, engine, cache)
    pool.start()
    try:
        first, _ = await store.create_job(NewJob(b"same document", OcrOptions(), (1, 2)))
        assert await final(store, first.id) is JobStatus.SUCCEEDED
        second, _ = await store.create_job(NewJob(b"same document", OcrOptions(), (1, 2)))
        assert await final(store, second.id) is JobStatus.SUCCEEDED
    finally:
        await pool.stop()
    assert calls == 2
    again = await store.get_job(second.id)
    assert again is not None and again.cached and again.cached_pages == 2
    assert await store.page_results(second.id, "text") == [b"page 1", b"page 2"]


def test_cached_page_values_round_trip() -> None:
    parts = {"page": b'{"a": 1}', "pdf": b"%PDF\n\x00\xff", "text": b""}
    assert unpack_page(pack_page(parts)) == parts
