"""One page on several workers (`page_parallel.py`), on the real libtesseract through the `capi` engine.

What is asserted is behaviour: when a page is cut (`timings.parallel`), that the merged result says
what the whole page says, in every mergeable format, with page coordinates; that a busy pool, a
small page, ALTO/PDF, another `psm` or the switch keep the page whole; that deadlines stop every
piece and no slot leaks. How much faster it is lives in `benchmarks/page_parallel.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from engine_images import dense_page, encode, text_image
from engine_support import largest_tick_gap, started_pipeline

from ocr_service.engine.base import PageRender, RecognitionRequest, Recognizer
from ocr_service.engine.regions import Region
from ocr_service.errors import RecognitionTimeout
from ocr_service.options import OcrOptions, OutputFormat, PreprocessOptions
from ocr_service.page_parallel import _SpreadPage
from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings

pytestmark = pytest.mark.xdist_group("engine")

SETTINGS = Settings(engine="capi", workers=2, queue_size=8, timeout_seconds=60, cache_ttl_seconds=0)
NONE = PreprocessOptions(mode="none")


@pytest.fixture(scope="module")
def spread() -> Iterator[OcrPipeline]:
    yield from started_pipeline(SETTINGS)


@pytest.fixture(scope="module")
def whole() -> Iterator[OcrPipeline]:
    yield from started_pipeline(dataclasses.replace(SETTINGS, page_parallelism=1))


@pytest.fixture(scope="module")
def page() -> bytes:
    return encode(dense_page(lines=40), "PNG")


def run(pipeline: OcrPipeline, data: bytes, fmt: str, **options: object) -> tuple[bytes, dict[str, object]]:
    outcome = asyncio.run(pipeline.run(data, OcrOptions(format=OutputFormat(fmt), preprocess=NONE, **options)))  # type: ignore[arg-type]
    timings = outcome.result.pages[0].timings
    return outcome.body, {"parallel": timings.parallel, "document": outcome.result.timings.parallel}


def folded(text: str) -> str:
    return " ".join(text.split())


def test_an_idle_pool_cuts_a_large_page_and_the_text_is_the_whole_pages(
    spread: OcrPipeline, whole: OcrPipeline, page: bytes
) -> None:
    split_text, split = run(spread, page, "text")
    whole_text, kept = run(whole, page, "text")
    assert split == {"parallel": 2, "document": 2}
    assert kept == {"parallel": 1, "document": 1}
    assert folded(split_text.decode()) == folded(whole_text.decode())


def test_json_of_a_cut_page_has_its_words_in_page_coordinates_in_reading_order(
    spread: OcrPipeline, whole: OcrPipeline, page: bytes
) -> None:
    split_body, split = run(spread, page, "json")
    whole_body, _ = run(whole, page, "json")
    assert split["parallel"] == 2
    cut, kept = json.loads(split_body), json.loads(whole_body)
    assert cut["timings"]["parallel"] == 2 and cut["pages"][0]["timings"]["parallel"] == 2

    def words(result: dict[str, object]) -> list[tuple[str, list[int]]]:
        page = result["pages"][0]  # type: ignore[index]
        return [
            (word["text"], word["bbox"])
            for block in page["blocks"]
            for paragraph in block["paragraphs"]
            for line in paragraph["lines"]
            for word in line["words"]
        ]

    cut_words, kept_words = words(cut), words(kept)
    assert [text for text, _ in cut_words] == [text for text, _ in kept_words]
    for (_, cut_box), (_, kept_box) in zip(cut_words, kept_words, strict=True):
        assert all(abs(a - b) <= 3 for a, b in zip(cut_box, kept_box, strict=True)), (cut_box, kept_box)
    tops = [box[1] for _, box in cut_words]
    assert tops[-1] > tops[0] + 1000, "the last words are far down the page: boxes are not region-relative"
    assert len(cut["pages"][0]["blocks"]) == len(kept["pages"][0]["blocks"]), "a cut block is one block again"
    assert cut["pages"][0]["confidence"] == pytest.approx(kept["pages"][0]["confidence"], abs=3)


def test_hocr_and_tsv_of_a_cut_page_are_one_page(spread: OcrPipeline, page: bytes) -> None:
    hocr, timings = run(spread, page, "hocr")
    assert timings["parallel"] == 2
    text = hocr.decode()
    assert text.count("class='ocr_page'") == 1
    width, height = dense_page(lines=40).size
    assert re.search(rf"class='ocr_page' id='page_1' title='[^']*bbox 0 0 {width} {height}", text)
    ids = re.findall(r" id='([^']+)'", text)
    assert len(ids) == len(set(ids)), "ids are unique across the regions"
    tsv, timings = run(spread, page, "tsv")
    assert timings["parallel"] == 2
    rows = [row.split("\t") for row in tsv.decode().splitlines()[1:]]
    assert [row[6:10] for row in rows if row[0] == "1"] == [["0", "0", str(width), str(height)]]
    assert len([row for row in rows if row[0] == "2"]) == 1, "the one text block stays one TSV block"
    assert len([row for row in rows if row[0] == "4"]) == 40


def test_alto_of_a_cut_page_is_one_page_with_the_whole_pages_words(
    spread: OcrPipeline, whole: OcrPipeline, page: bytes
) -> None:
    cut, timings = run(spread, page, "alto")
    kept, _ = run(whole, page, "alto")
    assert timings["parallel"] == 2
    text = cut.decode()
    width, height = dense_page(lines=40).size
    assert text.count("<Page ") == 1 and text.count("<PrintSpace ") == 1
    assert re.search(rf'<Page WIDTH="{width}" HEIGHT="{height}"', text)
    assert text.count("<ComposedBlock ") == kept.decode().count("<ComposedBlock "), "a cut block is one block again"
    ids = re.findall(r' ID="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    contents = re.findall(r'CONTENT="([^"]*)"', text)
    assert contents == re.findall(r'CONTENT="([^"]*)"', kept.decode())


@pytest.mark.parametrize(
    ("fmt", "options", "why"),
    [
        ("pdf", {}, "PDF is rendered from the whole page's result"),
        ("text", {"psm": 6}, "the caller asked for one uniform block"),
    ],
)
def test_these_pages_are_recognised_whole(
    spread: OcrPipeline, page: bytes, fmt: str, options: dict[str, object], why: str
) -> None:
    outcome = asyncio.run(spread.run(page, OcrOptions(format=OutputFormat(fmt), preprocess=NONE, **options)))  # type: ignore[arg-type]
    assert outcome.result.pages[0].timings.parallel == 1, why


def test_a_receipt_line_is_never_cut(spread: OcrPipeline) -> None:
    _, timings = run(spread, encode(text_image(["TOTAL 12.50 card paid thank you"]), "PNG"), "text")
    assert timings["parallel"] == 1


def test_a_busy_pool_recognises_pages_whole(spread: OcrPipeline, page: bytes) -> None:
    pool = spread._pool_or_fail()
    release = threading.Event()

    async def scenario() -> int:
        taken = threading.Event()

        def block(_recognizer: Recognizer) -> None:
            taken.set()
            release.wait(30)

        blocker = asyncio.ensure_future(pool.submit(block))
        await asyncio.to_thread(taken.wait, 10)
        try:
            outcome = await spread.run(page, OcrOptions(format=OutputFormat.TEXT, preprocess=NONE))
        finally:
            release.set()
            await blocker
        return outcome.result.pages[0].timings.parallel

    assert asyncio.run(scenario()) == 1


def test_a_deadline_stops_every_piece_and_leaks_no_slot(spread: OcrPipeline, page: bytes) -> None:
    pool = spread._pool_or_fail()
    started = time.monotonic()
    with pytest.raises(RecognitionTimeout):
        asyncio.run(spread.run(page, OcrOptions(format=OutputFormat.TEXT, preprocess=NONE), timeout=0.6))
    assert pool.wait_idle(1.5), f"a worker was still busy {time.monotonic() - started:.1f} s after the 504"
    assert pool.stats.busy == 0 and pool.stats.queued == 0
    _, timings = run(spread, page, "text")
    assert timings["parallel"] == 2, "both workers are idle again and take regions"


def test_python_keeps_running_while_a_page_is_cut_and_recognised(spread: OcrPipeline, page: bytes) -> None:
    timings: dict[str, object] = {}

    def work() -> None:
        timings.update(run(spread, page, "json")[1])

    gap, _, _ = largest_tick_gap(work)
    assert timings["parallel"] == 2
    assert gap < 0.25, f"a Python thread stood still {gap:.2f} s: something held the GIL"


# -- the shared state of one cut page, with stand-in recognizers (the orchestration is under test) --


class Scripted:
    """A recognizer that answers each region with its top edge, optionally failing or waiting."""

    def __init__(self, fail_at: int | None = None, hold: threading.Event | None = None) -> None:
        self.fail_at, self.hold, self.seen = fail_at, hold, []

    def recognize(self, pixels: np.ndarray, request: RecognitionRequest) -> PageRender:
        assert request.region is not None
        self.seen.append(request.region[1])
        if self.hold is not None:
            self.hold.wait(5)
        if request.region[1] == self.fail_at:
            raise ValueError("region failed")
        return PageRender((), f"line {request.region[1]}\n", {OutputFormat.TEXT: b""}, 90.0)

    def close(self) -> None: ...


CUT = tuple(Region((0, top, 10, top + 10), 0, 4) for top in (0, 10, 20, 30))
REQUEST = RecognitionRequest(1, "eng", 3, 1, 300, frozenset({OutputFormat.TEXT}), with_words=False)


def test_the_lender_does_every_region_a_late_helper_never_took() -> None:
    shared = _SpreadPage(np.zeros((40, 10), np.uint8), REQUEST, CUT)
    lender = Scripted()
    render = shared.run(lender)
    late: Recognizer = Scripted()
    shared.help(late)
    assert lender.seen == [0, 10, 20, 30] and late.seen == []  # type: ignore[attr-defined]
    assert render.text == "line 0\nline 10\nline 20\nline 30\n"


def test_the_lender_waits_for_a_region_a_helper_is_recognising_and_raises_its_failure() -> None:
    shared = _SpreadPage(np.zeros((40, 10), np.uint8), REQUEST, CUT)
    hold = threading.Event()
    helper = Scripted(fail_at=0, hold=hold)
    thread = threading.Thread(target=shared.help, args=(helper,))
    thread.start()
    while not helper.seen:
        time.sleep(0.001)
    threading.Timer(0.2, hold.set).start()
    with pytest.raises(ValueError, match="region failed"):
        shared.run(Scripted())
    thread.join(5)
    assert helper.seen == [0], "after a failure nobody starts another region"
