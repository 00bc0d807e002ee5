"""Slow clients (issue 10, items 6 and 7): a trickling body or header loses its connection in seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from service_support import LINE_ONE, has_words, make_settings, png, running_app
from test_service_errors import assert_problem


async def trickle(count: int, every: float) -> AsyncIterator[bytes]:
    """One byte every `every` seconds, `count` times: a client that is sending, just far too slowly."""
    for _ in range(count):
        yield b"\0"
        await asyncio.sleep(every)


async def test_trickling_uploads_get_408_within_the_body_limit_and_free_their_slots(tmp_path: Path) -> None:
    # Two slots (one worker, one queued page); the recognition limit is 30 s, the body limit 1 s.
    settings = make_settings(tmp_path, workers=1, queue_size=1, timeout_seconds=30, body_timeout_seconds=1)
    headers = {"content-type": "image/png", "content-length": "1000"}
    async with running_app(settings) as client:
        started = time.monotonic()
        slow = [client.post("/v1/ocr", content=trickle(200, 0.25), headers=headers) for _ in range(2)]
        answers = await asyncio.wait_for(asyncio.gather(*slow), timeout=10)
        elapsed = time.monotonic() - started
        for answer in answers:
            problem = assert_problem(answer, 408, "request-timeout")
            assert "too slowly" in str(problem["detail"])
            assert answer.headers["connection"] == "close"
        assert elapsed < 5, elapsed
        good = await client.post("/v1/ocr?format=text", content=png([LINE_ONE]))
        assert good.status_code == 200, good.text
        assert has_words(good.text, LINE_ONE)


async def test_a_body_arriving_at_a_steady_rate_is_given_the_time_it_needs(tmp_path: Path) -> None:
    """3 s for 300 KB at 100 KB/s is past the 1 s body limit, but each 64 KiB received buys a second."""
    document = png([LINE_ONE])
    padded = document + b"\0" * (300_000 - len(document))  # PNG readers stop at IEND: trailing bytes are ignored

    async def steady() -> AsyncIterator[bytes]:
        for offset in range(0, len(padded), 10_000):
            yield padded[offset : offset + 10_000]
            await asyncio.sleep(0.1)

    settings = make_settings(tmp_path, timeout_seconds=30, body_timeout_seconds=1)
    async with running_app(settings) as client:
        response = await asyncio.wait_for(client.post("/v1/ocr?format=text", content=steady()), timeout=30)
    assert response.status_code == 200, response.text
    assert has_words(response.text, LINE_ONE)
