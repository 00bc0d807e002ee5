"""The C-API engine: Python keeps running while Tesseract works, one recognition per page, real stops.

These run the real libtesseract on a dense page. The GIL tests count the ticks of a Python
thread that sleeps 5 ms at a time while a render runs: an engine call that held the GIL (as
tesserocr's ProcessPages does for ALTO and PDF) leaves a gap as long as the render.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from engine_images import dense_page, text_image
from engine_support import largest_tick_gap

from ocr_service.engine.base import RecognitionRequest
from ocr_service.engine.capi_engine import CapiBackend, CapiRecognizer, libraries
from ocr_service.errors import RecognitionTimeout
from ocr_service.options import OutputFormat

pytestmark = pytest.mark.xdist_group("engine")

ALL_FORMATS = frozenset(OutputFormat)


def request(formats: frozenset[OutputFormat], *, timeout_ms: int = 0, with_words: bool = False) -> RecognitionRequest:
    return RecognitionRequest(1, "eng", 3, 1, 300, formats, timeout_ms, with_words)


@pytest.fixture(scope="module")
def dense() -> np.ndarray:
    return np.asarray(dense_page(lines=45))


@pytest.fixture(scope="module")
def recognizer() -> Iterator[CapiRecognizer]:
    recognizer = CapiBackend().new_recognizer()
    recognizer.recognize(np.asarray(text_image(["warm up"])), request(frozenset({OutputFormat.TEXT})))
    yield recognizer
    recognizer.close()


@pytest.mark.parametrize(
    ("formats", "with_words"),
    [
        (frozenset({OutputFormat.PDF}), False),
        (frozenset({OutputFormat.ALTO}), False),
        (frozenset({OutputFormat.TEXT}), False),
        (frozenset({OutputFormat.JSON}), True),
        (frozenset({OutputFormat.HOCR, OutputFormat.TSV}), False),
    ],
    ids=["pdf", "alto", "text", "json", "hocr+tsv"],
)
def test_a_python_thread_keeps_running_during_every_render(
    recognizer: CapiRecognizer, dense: np.ndarray, formats: frozenset[OutputFormat], with_words: bool
) -> None:
    render = None

    def work() -> None:
        nonlocal render
        render = recognizer.recognize(dense, request(formats, with_words=with_words))

    gap, ticks, duration = largest_tick_gap(work)
    assert render is not None and "invoice" in render.text
    assert duration > 0.5, "the page is too easy to show a held GIL"
    # Holding the GIL for the render would leave one gap of about `duration` and almost no ticks.
    assert gap < min(0.3, duration / 3), f"a {gap:.2f} s gap in a {duration:.2f} s render"
    assert ticks > duration / 0.005 / 4


class _CountingTess:
    """libtesseract with `TessBaseAPIRecognize` counted (every other call passes straight through)."""

    def __init__(self, tess: Any) -> None:
        self._tess = tess
        self.recognitions = 0

    def TessBaseAPIRecognize(self, handle: int, monitor: int) -> int:
        self.recognitions += 1
        return int(self._tess.TessBaseAPIRecognize(handle, monitor))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tess, name)


def test_one_recognition_per_page_for_all_six_formats() -> None:
    libs = libraries()
    counting = _CountingTess(libs.tess)
    wrapped = type(libs).__new__(type(libs))
    wrapped.tess, wrapped.lept = counting, libs.lept  # type: ignore[assignment]
    recognizer = CapiRecognizer(wrapped)
    try:
        page = np.asarray(text_image(["one recognition", "six formats"]))
        render = recognizer.recognize(page, request(ALL_FORMATS, with_words=True))
    finally:
        recognizer.close()
    assert counting.recognitions == 1
    assert set(render.parts) == ALL_FORMATS - {OutputFormat.JSON}
    assert render.parts[OutputFormat.PDF].startswith(b"%PDF-")
    assert b"<alto" in render.parts[OutputFormat.ALTO] and b'CONTENT="formats"' in render.parts[OutputFormat.ALTO]
    assert b"class='ocr_page'" in render.parts[OutputFormat.HOCR]
    assert render.parts[OutputFormat.TEXT] == b"one recognition\nsix formats\n"
    assert [word.text for word in render.blocks[0].lines[1].words] == ["six", "formats"]


@pytest.mark.parametrize("fmt", [OutputFormat.TEXT, OutputFormat.PDF])
def test_the_time_limit_stops_tesseract(recognizer: CapiRecognizer, dense: np.ndarray, fmt: OutputFormat) -> None:
    started = time.monotonic()
    with pytest.raises(RecognitionTimeout, match="time limit"):
        recognizer.recognize(dense, request(frozenset({fmt}), timeout_ms=300))
    # Stopped, not finished: the dense page takes seconds in full; the bound leaves room for a loaded CI machine.
    assert time.monotonic() - started < 2.5
    # and the same recognizer reads the next page in full
    assert recognizer.recognize(np.asarray(text_image(["after the limit"])), request(frozenset({fmt}))).text == (
        "after the limit\n"
    )


def test_cancel_from_another_thread_stops_tesseract(recognizer: CapiRecognizer, dense: np.ndarray) -> None:
    outcome: list[BaseException | None] = []

    def work() -> None:
        try:
            recognizer.recognize(dense, request(ALL_FORMATS, with_words=True))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    time.sleep(0.3)
    cancelled = time.monotonic()
    recognizer.cancel()
    worker.join(5)
    assert not worker.is_alive()
    assert time.monotonic() - cancelled < 1.0
    assert isinstance(outcome[0], RecognitionTimeout) and "cancelled" in str(outcome[0])
    # a cancel before the next page does not stop that page
    assert recognizer.recognize(np.asarray(text_image(["next page"])), request(frozenset({OutputFormat.TEXT}))).text
