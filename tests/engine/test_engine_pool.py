"""The worker pool: immediate 429s, deadlines that really stop the work, stats, shutdown.

The first group drives `WorkerPool` with a recognizer whose work the test controls (an event
to block on), because the pool, not Tesseract, is under test there. The second group runs the
real engines through the pipeline and checks that a timed-out recognition leaves no busy
worker, no CPU burning and no tesseract process behind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import psutil
import pytest
from engine_images import dense_page, encode, multipage, text_image

from ocr_service.deadline import Deadline
from ocr_service.documents import PixelArray
from ocr_service.engine.base import PageRender, RecognitionRequest, Recognizer
from ocr_service.engine.model import EngineInfo
from ocr_service.engine.pool import WorkerPool
from ocr_service.errors import Overloaded, RecognitionTimeout, ServiceUnavailable
from ocr_service.logs import REQUEST_ID
from ocr_service.options import OcrOptions, OutputFormat, PreprocessOptions
from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings

pytestmark = pytest.mark.xdist_group("engine")


class IdleRecognizer:
    def recognize(self, pixels: PixelArray, request: RecognitionRequest) -> PageRender:
        raise AssertionError("the pool tests pass their own work")

    def close(self) -> None:
        pass


class IdleBackend:
    info = EngineInfo("test", "0")

    def new_recognizer(self) -> Recognizer:
        return IdleRecognizer()


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    pool = WorkerPool(IdleBackend(), workers=1, queue_size=1)
    pool.start()
    yield pool
    pool.close(join_timeout=5)


def blocker(release: threading.Event, ran: list[str], name: str):  # type: ignore[no-untyped-def]
    def work(recognizer: Recognizer) -> str:
        ran.append(name)
        release.wait(10)
        return name

    return work


async def wait_for(condition, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_a_caller_that_stops_waiting_cancels_the_tasks_deadline(pool: WorkerPool) -> None:
    """The running work learns it must stop (its `Deadline` is cancelled) when the pool stops waiting for it."""
    started, seen = threading.Event(), []

    def work(recognizer: Recognizer) -> str:
        started.set()
        end = time.monotonic() + 10
        while not deadline.cancelled and time.monotonic() < end:  # a step loop that checks its deadline
            time.sleep(0.005)
        seen.append(deadline.cancelled)
        return "stopped"

    deadline = Deadline.after(0.3)  # expiry: a 504 for the caller, a cancel for the work
    with pytest.raises(RecognitionTimeout):
        await pool.submit(work, deadline=deadline)
    await wait_for(lambda: seen == [True] and pool.stats.busy == 0, limit=2)

    deadline = Deadline.after(60)  # the caller is cancelled (client gone, job cancelled)
    started.clear()
    seen.clear()
    waiting = asyncio.create_task(pool.submit(work, deadline=deadline))
    await asyncio.to_thread(started.wait, 5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await wait_for(lambda: seen == [True] and pool.stats.busy == 0, limit=2)

    deadline = Deadline.after(60)  # a result: nothing to cancel
    assert await pool.submit(lambda recognizer: "done", deadline=deadline) == "done"
    assert not deadline.cancelled


async def test_full_pool_answers_429_immediately_and_recovers(pool: WorkerPool) -> None:
    release, ran = threading.Event(), []
    running = asyncio.create_task(pool.submit(blocker(release, ran, "a")))
    queued = asyncio.create_task(pool.submit(blocker(release, ran, "b")))
    await wait_for(lambda: pool.stats.busy == 1 and pool.stats.queued == 1)
    assert pool.stats.capacity == 2 and pool.stats.queue_capacity == 1
    with pytest.raises(Overloaded):
        pool.check_capacity()
    started = time.monotonic()
    with pytest.raises(Overloaded) as caught:
        await pool.submit(blocker(release, ran, "c"))
    assert time.monotonic() - started < 0.1
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    release.set()
    assert await running == "a" and await queued == "b"
    assert ran == ["a", "b"]
    pool.check_capacity()  # free again
    assert await pool.submit(lambda r: "again") == "again"
    await wait_for(lambda: pool.stats.busy == 0 and pool.stats.queued == 0)


async def test_waiting_submissions_queue_for_a_slot_instead_of_failing(pool: WorkerPool) -> None:
    release, ran = threading.Event(), []
    tasks = [asyncio.create_task(pool.submit(blocker(release, ran, str(n)), wait_for_slot=n > 0)) for n in range(5)]
    await wait_for(lambda: pool.stats.queued == 4)  # one queued in the pool, three waiting for a slot
    with pytest.raises(Overloaded):
        await pool.submit(blocker(release, ran, "refused"))
    release.set()
    assert await asyncio.gather(*tasks) == ["0", "1", "2", "3", "4"]
    assert ran == ["0", "1", "2", "3", "4"]


async def test_deadline_skips_queued_work_and_frees_the_slot(pool: WorkerPool) -> None:
    release, ran = threading.Event(), []
    running = asyncio.create_task(pool.submit(blocker(release, ran, "long")))
    await wait_for(lambda: pool.stats.busy == 1)
    started = time.monotonic()
    with pytest.raises(RecognitionTimeout) as caught:
        await pool.submit(blocker(release, ran, "late"), deadline=time.monotonic() + 0.2)
    assert caught.value.status == 504
    assert 0.15 < time.monotonic() - started < 1.0
    release.set()
    await running
    await wait_for(lambda: pool.stats.busy == 0 and pool.stats.queued == 0)
    assert ran == ["long"]  # the timed-out page never ran


async def test_deadline_while_waiting_for_a_slot(pool: WorkerPool) -> None:
    release, ran = threading.Event(), []
    first = asyncio.create_task(pool.submit(blocker(release, ran, "a")))
    second = asyncio.create_task(pool.submit(blocker(release, ran, "b")))
    await wait_for(lambda: pool.stats.queued == 1)
    with pytest.raises(RecognitionTimeout):
        await pool.submit(blocker(release, ran, "c"), deadline=time.monotonic() + 0.1, wait_for_slot=True)
    release.set()
    await asyncio.gather(first, second)
    await wait_for(lambda: pool.stats.queued == 0 and pool.stats.busy == 0)
    assert ran == ["a", "b"]
    assert await pool.submit(lambda r: "slot was returned") == "slot was returned"


async def test_cancelled_caller_skips_its_queued_work(pool: WorkerPool) -> None:
    release, ran = threading.Event(), []
    running = asyncio.create_task(pool.submit(blocker(release, ran, "a")))
    queued = asyncio.create_task(pool.submit(blocker(release, ran, "b")))
    await wait_for(lambda: pool.stats.queued == 1)
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)  # the cancellation has been processed
    await asyncio.sleep(0.01)
    release.set()
    await running
    await wait_for(lambda: pool.stats.queued == 0 and pool.stats.busy == 0)
    assert ran == ["a"]


async def test_errors_in_work_reach_the_caller_and_the_worker_survives(pool: WorkerPool) -> None:
    def broken(recognizer: Recognizer) -> None:
        raise ValueError("bad page")

    with pytest.raises(ValueError, match="bad page"):
        await pool.submit(broken)
    assert await pool.submit(lambda r: 42) == 42


async def test_closed_pool_refuses_work_and_cancels_the_queue() -> None:
    pool = WorkerPool(IdleBackend(), workers=1, queue_size=2)
    pool.start()
    release, ran = threading.Event(), []
    running = asyncio.create_task(pool.submit(blocker(release, ran, "a")))
    queued = asyncio.create_task(pool.submit(blocker(release, ran, "b")))
    await wait_for(lambda: pool.stats.queued == 1)
    closing = asyncio.create_task(asyncio.to_thread(pool.close, 0))
    await wait_for(lambda: pool._closed)
    with pytest.raises(ServiceUnavailable):
        await pool.submit(lambda r: None)
    release.set()
    await closing
    assert await running == "a"
    with pytest.raises(ServiceUnavailable, match="shut down"):
        await queued
    assert ran == ["a"]


# -- the real engines ----------------------------------------------------------------------------


def tesseract_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "tesseract" in p.name()]


def cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


@pytest.fixture(scope="module")
def dense_png() -> bytes:
    return encode(dense_page(lines=45), "PNG")


@pytest.mark.parametrize("engine", ["capi", "tesserocr", "pytesseract"])
@pytest.mark.parametrize("fmt", [OutputFormat.JSON, OutputFormat.PDF])
def test_timeout_is_504_and_really_stops_the_work(engine: str, fmt: OutputFormat, dense_png: bytes) -> None:
    settings = Settings(workers=1, engine=engine, default_preprocess="none")
    options = OcrOptions(format=fmt, preprocess=PreprocessOptions(mode="none"))

    async def scenario() -> None:
        pipeline = OcrPipeline(settings)
        await pipeline.start()
        try:
            started = time.monotonic()
            with pytest.raises(RecognitionTimeout):
                await pipeline.run(dense_png, options, timeout=0.4)
            assert time.monotonic() - started < 1.5
            # the worker is released promptly: Tesseract's own limit stopped it (or the process was killed)
            await wait_for(lambda: pipeline.stats().busy == 0, limit=3)
            assert tesseract_children() == []
            before = cpu_seconds()
            await asyncio.sleep(0.5)
            assert cpu_seconds() - before < 0.25  # nothing keeps burning CPU
            # and the pool still works
            small = encode(text_image(["still working"]), "PNG")
            assert (await pipeline.run(small, options)).result.pages[0].text == "still working"
        finally:
            await pipeline.aclose()

    asyncio.run(scenario())


def test_timeout_skips_the_queued_pages_of_a_document() -> None:
    settings = Settings(workers=1, default_preprocess="none")
    data = multipage([dense_page(lines=25, seed=n) for n in range(4)], "TIFF")

    async def scenario() -> None:
        pipeline = OcrPipeline(settings)
        await pipeline.start()
        try:
            with pytest.raises(RecognitionTimeout):
                await pipeline.run(data, OcrOptions(preprocess=PreprocessOptions(mode="none")), timeout=0.3)
            await wait_for(lambda: pipeline.stats().busy == 0 and pipeline.stats().queued == 0, limit=3)
        finally:
            await pipeline.aclose()

    asyncio.run(scenario())


def test_pipeline_answers_429_when_pages_fill_the_pool() -> None:
    settings = Settings(workers=1, queue_size=1, default_preprocess="none")
    two_pages = multipage([dense_page(lines=20), dense_page(lines=20, seed=3)], "TIFF")
    options = OcrOptions(format=OutputFormat.TEXT, preprocess=PreprocessOptions(mode="none"))

    async def scenario() -> None:
        pipeline = OcrPipeline(settings)
        await pipeline.start()
        try:
            first = asyncio.create_task(pipeline.run(two_pages, options))
            await wait_for(lambda: pipeline.stats().busy == 1 and pipeline.stats().queued == 1)
            with pytest.raises(Overloaded):
                await pipeline.run(encode(text_image(["refused"]), "PNG"), options)
            outcome = await first
            assert outcome.body.count(b"\f") == 1 and b"invoice" in outcome.body
        finally:
            await pipeline.aclose()

    asyncio.run(scenario())


def test_stats_and_engine_info(settings: Settings) -> None:
    pipeline = OcrPipeline(replace(settings, workers=3, queue_size=0))
    asyncio.run(pipeline.start())
    try:
        stats = pipeline.stats()
        assert (stats.workers, stats.queue_capacity, stats.capacity, stats.busy, stats.queued) == (3, 12, 15, 0, 0)
        info = pipeline.engine_info()
        assert info["name"] == "capi" and info["tesseract"] == "5.3.0" and info["leptonica"].startswith("1.")
        asyncio.run(pipeline.self_test())
    finally:
        asyncio.run(pipeline.aclose())
    assert pipeline.stats().workers == 0
    with pytest.raises(ServiceUnavailable):
        asyncio.run(pipeline.run(b"\x89PNG\r\n\x1a\n", OcrOptions()))


async def test_retry_after_follows_the_recent_page_time(pool: WorkerPool) -> None:
    await pool.submit(lambda r: time.sleep(1.2))  # the mean page now takes 1.2 s
    release, ran = threading.Event(), []
    tasks = [asyncio.create_task(pool.submit(blocker(release, ran, name))) for name in "ab"]
    await wait_for(lambda: pool.stats.busy == 1 and pool.stats.queued == 1)
    with pytest.raises(Overloaded) as caught:
        await pool.submit(blocker(release, ran, "c"))
    # 1.2 s x (1 queued + 1 running) / 1 worker, rounded up (4 if a loaded machine overslept)
    assert caught.value.headers["Retry-After"] in ("3", "4")
    release.set()
    await asyncio.gather(*tasks)


async def test_every_worker_warms_its_own_recognizer_at_start_and_survives_a_failed_warm_up() -> None:
    warmed: list[tuple[str, int]] = []

    def warm(recognizer: Recognizer) -> None:
        warmed.append((threading.current_thread().name, id(recognizer)))
        if len(warmed) == 1:
            raise RuntimeError("model missing")

    pool = WorkerPool(IdleBackend(), workers=3, queue_size=1, warm=warm)
    pool.start()
    try:
        await wait_for(lambda: len(warmed) == 3)
        assert len({name for name, _ in warmed}) == 3 and len({rid for _, rid in warmed}) == 3
        results = await asyncio.gather(*(pool.submit(lambda r: id(r), wait_for_slot=True) for _ in range(9)))
        assert set(results) <= {rid for _, rid in warmed}  # tasks use the warmed recognizers
    finally:
        pool.close()


async def test_work_runs_in_the_callers_context_so_its_log_lines_carry_the_request_id(pool: WorkerPool) -> None:
    def current_request_id(recognizer: Recognizer) -> str | None:
        return REQUEST_ID.get()

    token = REQUEST_ID.set("req-pool-1")
    try:
        seen = await pool.submit(current_request_id)
    finally:
        REQUEST_ID.reset(token)
    assert seen == "req-pool-1"
    assert await pool.submit(current_request_id) is None  # nothing leaks into the next task
