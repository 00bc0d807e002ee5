"""Fixtures for the engine tests: started pipelines on the real Tesseract, one per engine.

The pipelines are module-scoped and started with `asyncio.run` (the pool is thread-based and
serves any event loop), so each test module pays the engine start-up once. Tests that use them
share the `engine` xdist group so that one worker holds them, not every worker.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from engine_images import FONT_PATH
from engine_support import started_pipeline

from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under CI the set-up installs the font: let the tests fail loudly rather than skip silently.
    if not FONT_PATH.exists() and not os.environ.get("CI"):
        skip = pytest.mark.skip(reason=f"{FONT_PATH} missing: run scripts/install-system-deps.sh --dev")
        for item in items:
            if Path(str(item.fspath)).parent == Path(__file__).parent:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(workers=2, queue_size=8, default_preprocess="none", timeout_seconds=60)


@pytest.fixture(scope="module")
def pipeline(settings: Settings) -> Iterator[OcrPipeline]:
    """The warm tesserocr pipeline."""
    yield from started_pipeline(settings)


@pytest.fixture(scope="module")
def cli_pipeline(settings: Settings) -> Iterator[OcrPipeline]:
    """The pytesseract (CLI) pipeline."""
    from dataclasses import replace

    yield from started_pipeline(replace(settings, engine="pytesseract"))
