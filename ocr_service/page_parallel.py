"""One page recognised on every idle worker: analyse its layout once, recognise line groups in parallel, merge.

An idle service with N workers recognises a lone page on one of them while N-1 wait. When this
page may be spread (`spreadable`) and the pool has idle workers, the worker that took the page:

1. runs Tesseract's layout analysis (`CapiRecognizer.analyse`) on the preprocessed page scaled
   by `LAYOUT_SCALE` (a 300-DPI A4 page: 160-170 ms instead of 390-430 ms at full size; the cuts
   fall half-way between lines, so a pixel or two of precision does not matter);
2. plans regions of whole lines (`engine/regions.plan_regions`: none when the page is small or
   its blocks overlap, and it is then recognised whole);
3. lends one task per extra region to idle workers (`WorkerPool.lend`, each holds a slot, so
   admission sees those workers busy) and works through the regions itself as well: regions are
   pulled one at a time from shared state, so a helper that starts late takes none and the lender
   never waits for a task that has not started, only for regions a helper is already recognising;
4. merges the pieces in reading order (`merge_text`, `merge_blocks`, `merge_hocr`, `merge_tsv`)
   into the one `PageRender` a whole-page recognition gives, boxes in page coordinates.

On a busy service no worker is idle, so nothing is analysed or lent and throughput is that of
whole pages. Every piece runs under the page's `Deadline`: cancelling it stops every worker's
Recognize (each registers its own hook), and a helper that finds it passed takes nothing.

ALTO comes from Tesseract's renderer per region and is merged like hOCR (`merge_alto`). PDF is
the one format that stays whole: Tesseract's PDF renderer writes the page image with its text
layer from one engine's result, and a page of PDF cannot be stitched from pieces. Job pages store
every format but the PDF up front (the PDF is rendered on first request), so a lone job page on
an idle service is cut as well; a job of many pages keeps every worker busy and is never cut.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import TypeGuard

import cv2
import numpy as np

from ocr_service.documents import PixelArray
from ocr_service.engine.base import PageRender, RecognitionRequest, Recognizer, RegionRecognizer
from ocr_service.engine.pool import WorkerPool
from ocr_service.engine.regions import (
    MIN_LINES_PER_REGION,
    Region,
    merge_alto,
    merge_blocks,
    merge_hocr,
    merge_text,
    merge_tsv,
    plan_regions,
    scale_layout,
)
from ocr_service.engine.renderers import hocr_page_part
from ocr_service.errors import RecognitionTimeout
from ocr_service.options import OutputFormat

SPREADABLE_FORMATS = frozenset({OutputFormat.TEXT, OutputFormat.HOCR, OutputFormat.TSV, OutputFormat.ALTO})
"""Renderings that can be merged from regions (JSON's word model too: `request.with_words`)."""

SPREADABLE_PSM = frozenset({3})
"""Fully automatic segmentation: the only mode whose layout analysis finds blocks to cut. A caller
asking for one block (6), one line (7) or sparse text (11, 12) gets exactly that mode, whole."""

MIN_PIXELS = 500_000
"""Smaller pages are recognised whole without even analysing their layout: a 1200x100 receipt line
is 0.12 Mpx, a 300-DPI A4 page 8.7 Mpx. A guard that keeps the analysis off small crops, not a
measured break-even: the cut itself is decided by the layout (`plan_regions` wants 8 text lines,
4 per piece), and each piece's own set-up costs 3-4% of an A4 page."""

LAYOUT_SCALE = 0.5
"""The analysis finds the same blocks and lines at half size in 40% of the time (measured on the
A4 pages and the real scans of the accuracy benchmark). Its price: a page that turns out not to be
cuttable (overlapping blocks) is recognised whole from scratch, about 13% later than without the
analysis on a real two-column scan, and only on an idle service (a busy one never analyses)."""

_WAIT_GRACE_SECONDS = 2.0
"""How long past the deadline the lender waits for helpers that started a region: their own
Recognize stops at the deadline (the engine's monitor), so this is a safety net, never a wait."""


@dataclass(frozen=True)
class Spreader:
    """Where a page's regions may run: the pool, and at most `limit` workers per page (0 = all)."""

    pool: WorkerPool
    limit: int = 0

    def parts(self) -> int:
        """How many workers this page may use right now: itself plus the idle ones, within `limit`."""
        idle = self.pool.idle_workers()
        wanted = 1 + idle
        return min(wanted, self.limit) if self.limit else wanted


def spreadable(recognizer: Recognizer, pixels: PixelArray, request: RecognitionRequest) -> TypeGuard[RegionRecognizer]:
    """Whether this page could be cut at all: an engine that analyses layouts, a large page, mergeable formats."""
    return (
        isinstance(recognizer, RegionRecognizer)
        and request.region is None
        and request.psm in SPREADABLE_PSM
        and request.formats <= SPREADABLE_FORMATS
        and int(pixels.shape[0]) * int(pixels.shape[1]) >= MIN_PIXELS
    )


def recognize_page(
    recognizer: Recognizer, pixels: PixelArray, request: RecognitionRequest, spread: Spreader | None
) -> tuple[PageRender, int]:
    """Recognise the page, spread over idle workers when that pays; return the render and its region count.

    A count of 1 means the page was recognised whole.
    """
    if spread is None or not spreadable(recognizer, pixels, request):
        return recognizer.recognize(pixels, request), 1
    parts = spread.parts()
    if parts < 2:
        return recognizer.recognize(pixels, request), 1
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    resized = cv2.resize(pixels, None, fx=LAYOUT_SCALE, fy=LAYOUT_SCALE, interpolation=cv2.INTER_AREA)
    small: PixelArray = np.asarray(resized, dtype=np.uint8)  # already uint8: no copy
    dpi = round(request.dpi * LAYOUT_SCALE) if request.dpi else None
    analysed = recognizer.analyse(small, dataclasses.replace(request, dpi=dpi))
    regions = plan_regions(scale_layout(analysed, LAYOUT_SCALE, width, height), parts, MIN_LINES_PER_REGION)
    if not regions:
        return recognizer.recognize(pixels, request), 1
    page = _SpreadPage(pixels, request, regions)
    deadline_at = request.deadline.at if request.deadline is not None else None
    if spread.pool.lend(len(regions) - 1, page.help, deadline_at) == 0:
        page.close()  # the idle worker was taken meanwhile: nobody else will pull a region
        return recognizer.recognize(pixels, request), 1
    return page.run(recognizer), len(regions)


class _SpreadPage:
    """The regions of one page and their results, shared by the lender and its helpers."""

    def __init__(self, pixels: PixelArray, request: RecognitionRequest, regions: tuple[Region, ...]) -> None:
        self.pixels = pixels
        self.request = request
        self.regions = regions
        self.renders: list[PageRender | None] = [None] * len(regions)
        self._next = 0
        self._running = 0
        self._failure: BaseException | None = None
        self._closed = False
        self._changed = threading.Condition()

    def _take(self) -> int | None:
        with self._changed:
            if self._closed or self._failure is not None or self._next >= len(self.regions):
                return None
            index, self._next = self._next, self._next + 1
            self._running += 1
            return index

    def _recognise(self, recognizer: Recognizer, index: int) -> None:
        request = self.request
        deadline = request.deadline
        try:
            if deadline is not None:
                deadline.check(f"page {request.page_number}: region {index + 1} of {len(self.regions)}")
                timeout_ms = max(1, int(deadline.remaining() * 1000))
            else:
                timeout_ms = request.timeout_ms
            region = dataclasses.replace(request, region=self.regions[index].edges, timeout_ms=timeout_ms)
            render: PageRender | None = recognizer.recognize(self.pixels, region)
            failure: BaseException | None = None
        except BaseException as exc:
            render, failure = None, exc
        with self._changed:
            self._running -= 1
            self.renders[index] = render
            if failure is not None and self._failure is None:
                self._failure = failure
            self._changed.notify_all()

    def help(self, recognizer: Recognizer) -> None:
        """A lent task: recognise regions until none is left (none at all when it started late)."""
        while (index := self._take()) is not None:
            self._recognise(recognizer, index)

    def close(self) -> None:
        with self._changed:
            self._closed = True

    def run(self, recognizer: Recognizer) -> PageRender:
        """The lender: recognise regions too, wait for those helpers took, then merge."""
        self.help(recognizer)
        self.close()
        deadline = self.request.deadline
        with self._changed:
            while self._running:
                limit = None if deadline is None else deadline.at + _WAIT_GRACE_SECONDS - time.monotonic()
                if limit is not None and limit <= 0:
                    raise RecognitionTimeout(f"page {self.request.page_number}: a region did not stop at the deadline")
                self._changed.wait(limit)
            if self._failure is not None:
                raise self._failure
        renders = [render for render in self.renders if render is not None]
        if len(renders) != len(self.regions):  # unreachable: every region was taken and none failed
            raise RuntimeError(f"page {self.request.page_number}: a region was lost")
        return merge_renders(renders, self.regions, self.request, self.pixels)


def merge_renders(
    renders: list[PageRender], regions: tuple[Region, ...], request: RecognitionRequest, pixels: PixelArray
) -> PageRender:
    """The regions' renders as the one render of the whole page (see the module docstring)."""
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    text = merge_text([render.text for render in renders], regions)
    parts: dict[OutputFormat, bytes] = {}
    if OutputFormat.TEXT in request.formats:
        parts[OutputFormat.TEXT] = text.encode()
    if OutputFormat.HOCR in request.formats:
        hocr = merge_hocr([render.parts[OutputFormat.HOCR].decode() for render in renders], width, height)
        parts[OutputFormat.HOCR] = hocr_page_part(hocr, request.page_number).encode()
    if OutputFormat.TSV in request.formats:
        parts[OutputFormat.TSV] = merge_tsv(
            [render.parts[OutputFormat.TSV].decode() for render in renders], regions, width, height
        ).encode()
    if OutputFormat.ALTO in request.formats:
        parts[OutputFormat.ALTO] = merge_alto(
            [render.parts[OutputFormat.ALTO].decode() for render in renders], regions, width, height
        ).encode()
    if request.with_words:
        blocks = merge_blocks([render.blocks for render in renders], regions)
        return PageRender(blocks=blocks, text=text, parts=parts, confidence=None)
    return PageRender(blocks=(), text=text, parts=parts, confidence=_mean_confidence(renders))


def _mean_confidence(renders: list[PageRender]) -> float | None:
    """The engine's mean word confidence over the page: each region's weighted by its characters."""
    weighted = [(render.confidence, len(render.text.strip())) for render in renders if render.confidence is not None]
    total = sum(weight for _, weight in weighted)
    if not weighted:
        return None
    if total == 0:
        return sum(confidence for confidence, _ in weighted) / len(weighted)
    return sum(confidence * weight for confidence, weight in weighted) / total
