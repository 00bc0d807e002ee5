"""Concurrency: parallel requests all come back right, a full queue answers 429 at once, a slow one 504s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from service_support import has_words, make_settings, metric_value, png, running_app

from ocr_service.options import OcrOptions, OutputFormat

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]


def dense_page() -> bytes:
    """A page with enough text that recognising it takes a good second: long enough to be interrupted."""
    lines = [" ".join(WORDS[(row + col) % len(WORDS)] for col in range(9)) for row in range(40)]
    return png(lines, size=28)


async def test_parallel_requests_each_get_their_own_answer(tmp_path: Path) -> None:
    texts = [f"{WORDS[i]} {WORDS[(i + 5) % len(WORDS)]} number {100 + i}" for i in range(12)]
    settings = make_settings(tmp_path, workers=2, queue_size=len(texts))

    async def recognise(text: str) -> str:
        response = await client.post("/v1/ocr?format=text&psm=7", content=png([text]))
        assert response.status_code == 200, response.text
        return response.text

    async with running_app(settings) as client:
        results = await asyncio.wait_for(asyncio.gather(*(recognise(text) for text in texts)), timeout=120)
    for text, result in zip(texts, results, strict=True):
        assert has_words(result, text), (text, result)


async def test_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workers=1, queue_size=1, cache_ttl_seconds=0)  # every request must queue
    document = png([" ".join(WORDS)] * 8, size=32)
    async with running_app(settings) as client:
        responses = await asyncio.wait_for(
            asyncio.gather(*(client.post("/v1/ocr?format=text", content=document) for _ in range(8))), timeout=120
        )
        statuses = sorted(response.status_code for response in responses)
        assert set(statuses) == {200, 429}, statuses
        assert statuses.count(200) <= 2 + 1  # one worker + one queued (+ one admitted as another finished)
        for response in responses:
            if response.status_code == 429:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["type"].endswith("/overloaded")
                assert int(response.headers["retry-after"]) >= 1
            else:
                assert has_words(response.text, " ".join(WORDS))
        exposition = (await client.get("/metrics")).text
        assert metric_value(exposition, "ocr_rejected_requests_total", reason="overloaded") >= statuses.count(429)


async def test_time_limit_answers_504_and_stops_the_work(tmp_path: Path) -> None:
    document = dense_page()
    async with running_app(make_settings(tmp_path, workers=1, timeout_seconds=0.3)) as client:
        pipeline = client.app.state.pipeline  # type: ignore[attr-defined]
        started = time.perf_counter()
        await pipeline.run(document, OcrOptions(format=OutputFormat.TEXT), timeout=120)
        full_recognition = time.perf_counter() - started
        assert full_recognition > 0.6, "the page must take clearly longer than the time limit"

        started = time.perf_counter()
        response = await client.post("/v1/ocr", content=document)
        assert response.status_code == 504, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/timeout")
        for _ in range(1500):  # poll the pool for at most ~30 s
            if not pipeline.stats().busy:
                break
            await asyncio.sleep(0.02)
        stopped_after = time.perf_counter() - started
        assert pipeline.stats().busy == 0
        # The worker was freed well before an uninterrupted recognition would have finished.
        assert stopped_after < 0.8 * full_recognition, (stopped_after, full_recognition)


async def test_requests_beyond_the_pools_room_get_429_before_their_body_is_read(tmp_path: Path) -> None:
    """Slow uploads occupy every slot; the next request is refused at once, its body left unread."""
    release = asyncio.Event()
    document = png(["held upload"])

    reading = 0  # uploads whose body the service has started to read: admitted ones

    async def held_upload() -> AsyncIterator[bytes]:
        nonlocal reading
        reading += 1
        yield document[:100]
        await asyncio.wait_for(release.wait(), timeout=30)
        yield document[100:]

    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(10_000):
            pulled += 1
            yield b"\0" * 1024

    settings = make_settings(tmp_path, workers=1, queue_size=1, cache_ttl_seconds=0)  # room for 2 requests
    async with running_app(settings) as client:
        held = [asyncio.create_task(client.post("/v1/ocr?format=text", content=held_upload())) for _ in range(2)]
        for _ in range(1000):  # until both uploads are admitted and being read (at most ~10 s)
            if reading == 2:
                break
            await asyncio.sleep(0.01)
        assert reading == 2
        refused = await asyncio.wait_for(client.post("/v1/ocr", content=endless()), timeout=10)
        assert refused.status_code == 429
        assert refused.json()["type"].endswith("/overloaded")
        assert int(refused.headers["retry-after"]) >= 1
        assert pulled <= 1, "the refused body must not be read"
        release.set()
        for response in await asyncio.wait_for(asyncio.gather(*held), timeout=60):
            assert response.status_code == 200, response.text
            assert has_words(response.text, "held upload")
