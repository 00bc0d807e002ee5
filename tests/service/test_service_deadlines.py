"""Deadlines everywhere: past its limit a request answers 504 on time and no worker stays busy after it.

Timings here are limits with generous slack (the suite shares its cores), not measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from service_support import font, make_settings, png, running_app

from ocr_service.deadline import Deadline
from ocr_service.errors import RecognitionTimeout
from ocr_service.http.preview import render_preview
from ocr_service.options import OcrOptions, OutputFormat, PreprocessOptions
from ocr_service.pipeline import OcrPipeline

TEXT_AS_IS = OcrOptions(format=OutputFormat.TEXT, preprocess=PreprocessOptions(mode="none"))
WORDS = ["invoice", "total", "amount", "coffee", "bread", "butter", "milk", "cheese", "receipt", "paid", "card"]


@functools.cache
def many_frame_gif(frames: int = 30, side: int = 2000) -> bytes:
    """`frames` full-size frames that all differ (noise band rolled per frame, so Pillow cannot crop them)
    and cost real LZW decoding, with lines of text below the band for Tesseract to read."""
    rng = np.random.default_rng(7)
    band = (rng.integers(0, 2, (side // 2, side)) * 20 + 235).astype(np.uint8)
    text_font = font(36)
    images = []
    for k in range(frames):
        pixels = np.full((side, side), 255, dtype=np.uint8)
        pixels[: side // 2] = np.roll(band, k, axis=1)
        image = Image.fromarray(pixels, "L")
        draw = ImageDraw.Draw(image)
        for line in range(10):
            draw.text((60, side // 2 + 40 + line * 90), f"frame {k} line {line} total paid", fill=0, font=text_font)
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], optimize=False)
    return buffer.getvalue()


def dense_page(lines: int = 99) -> bytes:
    """An A4-length page of varied words: recognising it takes several seconds."""
    rows = [" ".join(WORDS[(row * 7 + col * 3) % len(WORDS)] for col in range(9)) for row in range(lines)]
    return png(rows, size=28)


async def idle_after(pipeline: OcrPipeline, limit: float) -> float:
    """Seconds until the pool has no busy worker (polled; at most `limit` + a little)."""
    started = time.perf_counter()
    for _ in range(int(limit * 100) + 1):
        if not pipeline.stats().busy:
            break
        await asyncio.sleep(0.01)
    assert pipeline.stats().busy == 0, f"a worker is still busy {limit} s after the request ended"
    return time.perf_counter() - started


async def test_a_many_frame_gif_answers_504_at_its_time_limit_and_frees_the_workers(tmp_path: Path) -> None:
    """30 frames of 2000x2000: counting, sizing and decoding them used to take seconds outside the deadline.

    Timed from `pipeline.run`, so the 21 MB upload through the in-process client is not counted;
    the same request over HTTP is a 504 too. Without preprocessing: OSD (the orientation step) is a
    native call Tesseract cannot interrupt, and on the noise band it runs for seconds.
    """
    document = many_frame_gif()
    limit = 2.0
    async with running_app(make_settings(tmp_path, timeout_seconds=limit, cache_ttl_seconds=0)) as client:
        pipeline: OcrPipeline = client.app.state.pipeline  # type: ignore[attr-defined]
        started = time.perf_counter()
        with pytest.raises(RecognitionTimeout):
            await pipeline.run(document, TEXT_AS_IS, timeout=limit)
        answered = time.perf_counter() - started
        assert answered < limit + 1.0, f"504 after {answered:.2f} s for a {limit} s limit"
        await idle_after(pipeline, 1.5)
        response = await client.post("/v1/ocr?format=text&preprocess=none", content=document)
        assert response.status_code == 504, response.text
        assert response.json()["type"].endswith("/timeout")
        await idle_after(pipeline, 1.5)


async def test_a_dense_page_past_a_1_s_limit_leaves_no_worker_busy(tmp_path: Path) -> None:
    """Recognition (and the ALTO/PDF render after it) stops at the limit. Without preprocessing, as OSD
    cannot be interrupted (under load an A4 page's OSD alone can outlast this test's slack)."""
    document = dense_page()
    async with running_app(make_settings(tmp_path, workers=1, timeout_seconds=1, cache_ttl_seconds=0)) as client:
        for fmt in ("text", "pdf"):
            started = time.perf_counter()
            response = await client.post(f"/v1/ocr?format={fmt}&preprocess=none", content=document)
            assert response.status_code == 504, response.text
            assert time.perf_counter() - started < 2.0
            await idle_after(client.app.state.pipeline, 1.5)  # type: ignore[attr-defined]


async def test_a_caller_that_stops_waiting_stops_its_recognition(tmp_path: Path) -> None:
    """No deadline passes here: only the caller goes away (a disconnect, a cancelled job), and Tesseract stops."""
    document = dense_page()
    async with running_app(make_settings(tmp_path, workers=1, cache_ttl_seconds=0)) as client:
        pipeline: OcrPipeline = client.app.state.pipeline  # type: ignore[attr-defined]
        options = TEXT_AS_IS
        started = time.perf_counter()
        await pipeline.run(document, options, timeout=120)
        full = time.perf_counter() - started
        assert full > 2.5, f"the page must take clearly longer than the cancel point ({full:.2f} s)"

        running = asyncio.create_task(pipeline.run(document, options, timeout=120))
        await asyncio.sleep(1.0)  # well into recognition
        assert pipeline.stats().busy == 1
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, RecognitionTimeout):
            await running
        stopped = await idle_after(pipeline, 1.5)
        assert stopped < full - 1.0, (stopped, full)  # freed well before the page would have finished


async def test_many_frame_gifs_in_flight_do_not_starve_an_unrelated_request(tmp_path: Path) -> None:
    """6 concurrent 10-frame GIFs once held asyncio's default executor for minutes; a 1-page PDF waited 101 s.

    Now the GIFs open in milliseconds on the bounded helper threads and their 60 pages queue on the
    pool: the unrelated request is answered at once (200, or 429 with Retry-After while the pool is
    full), and the event loop keeps answering probes.
    """
    document = many_frame_gif(10)
    single = png(["unrelated request"])
    settings = make_settings(tmp_path, timeout_seconds=8, cache_ttl_seconds=0)
    async with running_app(settings) as client:
        pipeline: OcrPipeline = client.app.state.pipeline  # type: ignore[attr-defined]
        gifs = [
            asyncio.create_task(client.post("/v1/ocr?format=text&preprocess=none", content=document)) for _ in range(6)
        ]
        for _ in range(500):  # until the GIFs' pages fill the pool (at most ~5 s)
            if pipeline.stats().busy == pipeline.stats().workers:
                break
            await asyncio.sleep(0.01)
        slowest_probe = 0.0
        for _ in range(5):
            started = time.perf_counter()
            assert (await client.get("/livez")).status_code == 200
            slowest_probe = max(slowest_probe, time.perf_counter() - started)
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        response = await client.post("/v1/ocr?format=text", content=single)
        answered = time.perf_counter() - started
        assert response.status_code in (200, 429), response.text
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
        assert answered < 3.0, f"the unrelated request waited {answered:.2f} s"
        assert slowest_probe < 0.5, f"/livez took {slowest_probe:.3f} s"
        statuses = [(await gif).status_code for gif in gifs]
        assert set(statuses) <= {200, 429, 504}, statuses
        await idle_after(pipeline, 1.5)


async def test_a_preview_past_its_limit_answers_504_and_leaves_no_helper_thread_busy(tmp_path: Path) -> None:
    """The preview decodes on the bounded helper threads under the request's deadline: walking a GIF to
    its last frame stops at the next frame once the deadline passes, instead of decoding on."""
    document = many_frame_gif()
    settings = make_settings(tmp_path)
    started = time.perf_counter()
    await asyncio.to_thread(render_preview, document, settings, 30, None)
    full = time.perf_counter() - started
    started = time.perf_counter()
    with pytest.raises(RecognitionTimeout):
        await asyncio.to_thread(render_preview, document, settings, 30, None, Deadline.after(0.02))
    stopped = time.perf_counter() - started
    assert stopped < full, f"the walk went on past its deadline ({stopped:.2f} s of {full:.2f} s)"

    async with running_app(make_settings(tmp_path, timeout_seconds=0.1)) as client:
        pipeline: OcrPipeline = client.app.state.pipeline  # type: ignore[attr-defined]
        helpers = pipeline._helpers
        assert helpers is not None
        response = await client.post("/v1/preview?page=30", content=document, headers={"content-type": "image/gif"})
        assert response.status_code == 504, response.text
        assert response.json()["type"].endswith("/timeout")
        answered = time.perf_counter()
        for _ in range(100):
            if helpers.in_use == 0:
                break
            await asyncio.sleep(0.01)
        assert helpers.in_use == 0, "the abandoned decode still holds a helper thread a second after the 504"
        assert time.perf_counter() - answered < 1.0
