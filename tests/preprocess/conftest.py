"""Fixtures for the preprocessing tests: small pages rendered from known text, and a warm Tesseract.

The pages are a few lines of real prose at about 10 pt / 300 DPI, small enough that recognising
one takes a fraction of a second, so each test can check what Tesseract reads, not just pixels.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from preprocess_pages import FONT_PATH, Gray, render


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under CI the set-up installs the font: let the tests fail loudly rather than skip silently.
    if FONT_PATH.exists() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason=f"{FONT_PATH} missing: run scripts/install-system-deps.sh --dev")
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def page() -> Gray:
    return render()


@pytest.fixture(scope="session")
def tesseract() -> Iterator[object]:
    tesserocr = pytest.importorskip("tesserocr")
    api = tesserocr.PyTessBaseAPI(lang="eng", psm=tesserocr.PSM.AUTO)
    yield api
    api.End()


@pytest.fixture(scope="session")
def read(tesseract: object) -> Callable[[Gray], str]:
    """Recognise an 8-bit gray image with the warm engine."""

    def recognise(image: Gray) -> str:
        image = np.ascontiguousarray(image)
        tesseract.SetImageBytes(image.tobytes(), image.shape[1], image.shape[0], 1, image.shape[1])  # type: ignore[attr-defined]
        return str(tesseract.GetUTF8Text())  # type: ignore[attr-defined]

    return recognise


@pytest.fixture(scope="session")
def words(tesseract: object) -> Callable[[Gray], list[tuple[str, tuple[int, int, int, int]]]]:
    """Recognise and return each word with its box [x, y, w, h]."""
    tesserocr = pytest.importorskip("tesserocr")

    def recognise(image: Gray) -> list[tuple[str, tuple[int, int, int, int]]]:
        image = np.ascontiguousarray(image)
        tesseract.SetImageBytes(image.tobytes(), image.shape[1], image.shape[0], 1, image.shape[1])  # type: ignore[attr-defined]
        tesseract.Recognize()  # type: ignore[attr-defined]
        found = []
        iterator = tesseract.GetIterator()  # type: ignore[attr-defined]
        level = tesserocr.RIL.WORD
        for word in tesserocr.iterate_level(iterator, level):
            text = word.GetUTF8Text(level)
            x0, y0, x1, y1 = word.BoundingBox(level)
            found.append((text, (x0, y0, x1 - x0, y1 - y0)))
        return found

    return recognise
