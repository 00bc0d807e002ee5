"""Concurrency: parallel requests all come back right, a full queue answers 429 at once, a slow one 504s."""

from __future__ import annotations

import asyncio
import time
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
