"""Helpers the engine tests share: a started pipeline, and a probe of whether Python keeps running."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings


def started_pipeline(settings: Settings) -> Iterator[OcrPipeline]:
    pipeline = OcrPipeline(settings)
    asyncio.run(pipeline.start())
    try:
        yield pipeline
    finally:
        asyncio.run(pipeline.aclose())


def largest_tick_gap(work: Callable[[], object]) -> tuple[float, int, float]:
    """Run `work` while a thread ticks every 5 ms: (largest gap in s, ticks, duration of work in s)."""
    stop = threading.Event()
    gaps: list[float] = []

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    started = time.perf_counter()
    try:
        work()
    finally:
        duration = time.perf_counter() - started
        stop.set()
        ticker.join()
    return max(gaps), len(gaps), duration
