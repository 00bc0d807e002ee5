"""The one facade the HTTP layer, the CLI and the jobs call: bytes + options in, result + rendered body out.

```python
pipeline = OcrPipeline(settings)
await pipeline.start()                       # choose the engine, start the pool, warm every worker
pipeline.installed_languages() -> list[str]  # without osd
pipeline.resolve_lang("eng+chi-sim") -> str  # normalised, or UnknownLanguage(param="lang")
pipeline.engine_info() -> dict[str, str]     # name, version (Tesseract), tesseract, leptonica
pipeline.stats() -> PoolStats                # workers, busy, queued, queue_capacity, capacity
pipeline.capacity() -> int                   # stats().capacity, cheaply
await pipeline.offload(fn, *args, deadline=d) # fn on the bounded helper threads (engine/helpers.py)
await pipeline.self_test()                   # readiness: recognises a generated image, raises on failure

# synchronous requests
outcome = await pipeline.run(data, options, timeout=seconds)   # OcrOutcome(result, body, media_type)

# jobs: store the document once, recognise pages anywhere, merge at the end
info = pipeline.inspect(data, options, deadline)                 # DocumentInfo(kind, page_count, pages, sha256...)
page = await pipeline.run_page(data, n, options, {OutputFormat.PDF, ...}, timeout=seconds)  # PageOutcome
record = page.to_record(); page = PageOutcome.from_record(record)                     # JSON-safe storage
body = pipeline.combine(pages, OutputFormat.PDF, language=..., sha256=info.sha256)   # merged document
result = pipeline.assemble(pages, language=..., sha256=...)                           # DocumentResult
```

What happens to one page, all inside a worker thread (the event loop only awaits): decode it
(`documents.Document.load_page`), preprocess it (`ocr_service.preprocess.preprocess`, the
report goes into the page JSON and its time into `timings.preprocess_ms`), recognise it ONCE
producing every requested Tesseract rendering (and the word model only when JSON is among the
formats: it is the one format that needs word boxes), then map word boxes back to the
original page with the preprocessing transform. Pages of one document run in parallel on the
pool; the first page is admitted or refused (`Overloaded`, 429) at once, later pages wait for
a slot.

Per-request overhead is part of the product (issue 2 wants the service within 5% of the raw
engine on receipt-line crops), so a document of a single-page kind (PNG, JPEG, WebP, BMP) is
opened, recognised and rendered in ONE worker task: no thread hop to open it before, none to
render it after. Multi-page kinds (TIFF, GIF, PDF) are opened on a helper thread (the bounded
`HelperPool`, never asyncio's default executor) and their pages fanned out over the pool as
described above.

Everything shares one `Deadline` (`timeout`, default `settings.timeout_seconds`): past it
the request raises `RecognitionTimeout` (504), queued pages are skipped, and running ones stop:
the work checks the deadline before every step (opening and counting, decoding each frame, each
preprocessing step, recognising, rendering ALTO/PDF) and the pool cancels it as soon as the
caller stops waiting, which also cuts the `capi` engine's Recognize short (see `engine/pool.py`).

Errors raised are `ocr_service.errors.OcrError` subclasses with their HTTP status.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ocr_service.deadline import Deadline
from ocr_service.documents import Document, DocumentKind, PageImage, PixelArray, open_document, sniff
from ocr_service.engine import languages
from ocr_service.engine.backends import library_versions, load_backend
from ocr_service.engine.base import ASSUMED_DPI, EngineBackend, PageRender, RecognitionRequest, Recognizer
from ocr_service.engine.cpus import available_cpus
from ocr_service.engine.helpers import HelperPool
from ocr_service.engine.model import (
    BBox,
    Block,
    DocumentResult,
    DocumentTimings,
    EngineInfo,
    Line,
    PageResult,
    PageTimings,
    Paragraph,
    Word,
)
from ocr_service.engine.pool import PoolStats, WorkerPool
from ocr_service.engine.renderers import combine as combine_parts
from ocr_service.errors import InvalidParameter, OcrError, Overloaded, ServiceUnavailable
from ocr_service.options import MEDIA_TYPES, PREPROCESS_STEPS, OcrOptions, OutputFormat
from ocr_service.page_parallel import Spreader, recognize_page
from ocr_service.preprocess import map_bbox, preprocess
from ocr_service.settings import Settings

T = TypeVar("T")
VALID_PSM = frozenset({1, *range(3, 14)})
"""Page segmentation modes that recognise text (0 is orientation only, 2 is not implemented by Tesseract)."""
VALID_OEM = frozenset(range(4))
SELF_TEST_TEXT = "Catalyst ready 42"
SINGLE_PAGE_KINDS = frozenset({DocumentKind.PNG, DocumentKind.JPEG, DocumentKind.WEBP, DocumentKind.BMP})
"""Kinds `documents` always opens as exactly one page (only TIFF, GIF and PDF are counted): their
whole request runs as one worker task (see the module docstring)."""


@dataclass(frozen=True)
class DocumentInfo:
    """What `inspect` learned without decoding pixels: enough for jobs to plan per-page work."""

    kind: DocumentKind
    media_type: str
    page_count: int
    pages: tuple[int, ...]
    sha256: str


@dataclass(frozen=True)
class PageOutcome:
    """One recognised page and its per-format render parts (see `engine/renderers.py`)."""

    page: PageResult
    parts: dict[OutputFormat, bytes]

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe form for storage (parts base64-encoded)."""
        return {
            "page": self.page.to_json(),
            "parts": {fmt.value: base64.b64encode(part).decode() for fmt, part in self.parts.items()},
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PageOutcome:
        parts = {OutputFormat(name): base64.b64decode(part) for name, part in record.get("parts", {}).items()}
        return cls(PageResult.from_json(record["page"]), parts)


@dataclass(frozen=True)
class OcrOutcome:
    """A finished synchronous request: the model, and the body in the requested format."""

    result: DocumentResult
    body: bytes
    media_type: str


class OcrPipeline:
    """See the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.job_limits = dataclasses.replace(settings, max_pages=settings.job_max_pages)
        """The settings the per-page API for jobs (`inspect`, `run_page`) opens documents with."""
        self._backend: EngineBackend | None = None
        self._pool: WorkerPool | None = None
        self._helpers: HelperPool | None = None
        self._spread: Spreader | None = None
        """Set when one page may use several workers (`OCR_PAGE_PARALLELISM`, `page_parallel.py`)."""
        self._start_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Choose the engine, start the worker pool (each thread loads the default model) and self-test."""
        async with self._start_lock:
            if self._pool is not None:
                return
            backend = await asyncio.to_thread(load_backend, self.settings.engine)
            workers = self.settings.workers or available_cpus()
            pool = WorkerPool(backend, workers, self.settings.queue_size, warm=self._warm_worker)
            pool.start()
            helpers = HelperPool(
                self.settings.helper_threads or max(2, workers), self.settings.helper_queue_size or pool.capacity
            )
            self._backend, self._pool, self._helpers = backend, pool, helpers
            limit = self.settings.page_parallelism
            self._spread = Spreader(pool, limit) if workers > 1 and limit != 1 else None
        await self.self_test()

    def _warm_worker(self, recognizer: Recognizer) -> None:
        """Load the default model in a worker thread as it starts, so no early request pays for it."""
        try:
            lang = self.resolve_lang(self.settings.default_lang)
        except OcrError:
            return
        options = OcrOptions(lang=lang, psm=self.settings.default_psm, oem=self.settings.default_oem)
        request = RecognitionRequest(1, options.lang, options.psm, options.oem, ASSUMED_DPI, frozenset(), 30_000)
        recognizer.recognize(_self_test_image(), request)

    async def aclose(self, grace_seconds: float = 0) -> None:
        """Refuse new work, let admitted pages finish for `grace_seconds`, then stop the workers."""
        pool, self._pool = self._pool, None
        helpers, self._helpers = self._helpers, None
        if helpers is not None:
            helpers.close()
        if pool is not None:
            await asyncio.to_thread(pool.close, grace_seconds)

    # -- facts -----------------------------------------------------------------------------------

    def installed_languages(self) -> list[str]:
        return languages.installed_languages()

    def resolve_lang(self, raw: str) -> str:
        return languages.resolve_lang(raw)

    def engine_info(self) -> dict[str, str]:
        versions = library_versions()
        name = self._backend.info.name if self._backend is not None else self.settings.engine
        return {"name": name, "version": versions["tesseract"], **versions}

    def stats(self) -> PoolStats:
        pool = self._pool
        return pool.stats if pool is not None else PoolStats(0, 0, 0, 0, 0)

    def overloaded(self) -> Overloaded:
        """The pool's 429, its Retry-After from how long the queue takes to drain (for gates in front of it)."""
        pool = self._pool_or_fail()
        return pool.overloaded()

    def capacity(self) -> int:
        """`stats().capacity` without taking the pool's lock: read on every request's admission."""
        pool = self._pool
        return pool.capacity if pool is not None else 0

    async def offload(self, fn: Callable[..., T], *args: object, deadline: Deadline | None = None) -> T:
        """`fn(*args)` on the bounded helper threads: 429 when they are full, 504 past `deadline` (see helpers.py)."""
        helpers = self._helpers
        if helpers is None:
            raise ServiceUnavailable("the OCR engine is not running (starting up or shutting down)")
        return await helpers.run(fn, *args, deadline=deadline)

    async def self_test(self) -> None:
        """Recognise a generated image and check the words come back; raise RuntimeError otherwise.

        When every slot is taken the pool is demonstrably working, so a busy service stays ready.
        """
        pixels = _self_test_image()
        lang = "eng" if "eng" in self.installed_languages() else self.settings.default_lang
        options = OcrOptions(lang=lang, psm=6, format=OutputFormat.TEXT)
        options = dataclasses.replace(options, preprocess=dataclasses.replace(options.preprocess, mode="none"))
        page = PageImage(1, pixels, None)
        deadline = Deadline.after(30)
        try:
            outcome = await self._pool_or_fail().submit(
                _page_work(_PreDecoded(page), 1, options, frozenset(), deadline, with_words=False), deadline=deadline
            )
        except Overloaded:
            return
        if "catalyst" not in outcome.page.text.lower():
            raise RuntimeError(f"engine self-test recognised {outcome.page.text!r} instead of {SELF_TEST_TEXT!r}")

    # -- options ---------------------------------------------------------------------------------

    def validate(self, options: OcrOptions) -> OcrOptions:
        """Check every option the engine depends on; return them with `lang` normalised."""
        lang = self.resolve_lang(options.lang)
        if options.psm not in VALID_PSM:
            raise InvalidParameter(f"psm must be 1 or 3-13, got {options.psm}", param="psm")
        if options.oem not in VALID_OEM:
            raise InvalidParameter(f"oem must be 0-3, got {options.oem}", param="oem")
        if not 1 <= options.dpi <= self.settings.max_dpi:
            raise InvalidParameter(f"dpi must be between 1 and {self.settings.max_dpi}, got {options.dpi}", param="dpi")
        unknown = sorted(set(options.preprocess.steps) - set(PREPROCESS_STEPS))
        if options.preprocess.mode not in ("auto", "none") or unknown:
            raise InvalidParameter(
                f"preprocess must be auto or none with steps from {', '.join(PREPROCESS_STEPS)}", param="preprocess"
            )
        # Options parsed by the HTTP layer or the CLI already carry the normalised `lang`: no copy then.
        return options if lang == options.lang else dataclasses.replace(options, lang=lang)

    # -- synchronous requests --------------------------------------------------------------------

    async def run(
        self,
        data: bytes,
        options: OcrOptions,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline for the pool and engines, not an await limit
        sha256: str | None = None,
    ) -> OcrOutcome:
        """Recognise the selected pages of `data` and render `options.format` (see the module docstring).

        `sha256` is the document's digest when the caller already has it (the HTTP layer hashes the
        body for its cache key), so the document is not hashed twice.
        """
        started = time.perf_counter()
        deadline = Deadline.after(timeout or self.settings.timeout_seconds)
        pool = self._pool_or_fail()
        options = self.validate(options)
        if sniff(data) in SINGLE_PAGE_KINDS:
            work = self._whole_document_work(data, options, sha256, started, deadline)
            return await pool.submit(work, deadline=deadline)  # a full pool answers 429 here, before decoding
        pool.check_capacity()  # a full pool answers 429 before the document is opened
        document, info = await self.offload(self._open, data, options, sha256, deadline, deadline=deadline)
        try:
            pages = await self._recognise(document, info.pages, options, {options.format}, deadline, first_waits=False)
        finally:
            document.close()
        result = self.assemble(pages, language=options.lang, sha256=info.sha256, total_ms=_ms(started))
        # Serialising or merging a long document takes milliseconds: never on the event loop.
        body = await self.offload(self._render, pages, result, options.format, deadline=deadline)
        return OcrOutcome(result, body, MEDIA_TYPES[options.format])

    def _whole_document_work(
        self, data: bytes, options: OcrOptions, sha256: str | None, started: float, deadline: Deadline
    ) -> Callable[[Recognizer], OcrOutcome]:
        """One worker task for a whole single-page document: open, recognise, assemble and render."""
        formats = _tesseract_formats({options.format})
        with_words = options.format is OutputFormat.JSON
        spread = self._spread

        def work(recognizer: Recognizer) -> OcrOutcome:
            document, info = self._open(data, options, sha256, deadline)
            try:
                pages = [
                    _page_work(document, n, options, formats, deadline, with_words=with_words, spread=spread)(
                        recognizer
                    )
                    for n in info.pages
                ]
            finally:
                document.close()
            result = self.assemble(pages, language=options.lang, sha256=info.sha256, total_ms=_ms(started))
            return OcrOutcome(result, self._render(pages, result, options.format), MEDIA_TYPES[options.format])

        return work

    def _render(self, pages: Sequence[PageOutcome], result: DocumentResult, fmt: OutputFormat) -> bytes:
        """The response body: JSON from the assembled model, every other format merged from the page parts."""
        if fmt is OutputFormat.JSON:
            return _json_body(result)
        return self.combine(pages, fmt, language=result.language, sha256=result.sha256)

    # -- per-page API for jobs -------------------------------------------------------------------

    def inspect(self, data: bytes, options: OcrOptions, deadline: Deadline | None = None) -> DocumentInfo:
        """Sniff, count and size-check the document without decoding pixels (raises the same errors as `run`)."""
        options = self.validate(options)
        document, info = self._open(data, options, deadline=deadline, limits=self.job_limits)
        document.close()
        return info

    async def run_page(
        self,
        data: bytes,
        page_number: int,
        options: OcrOptions,
        formats: set[OutputFormat] | frozenset[OutputFormat],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - see run()
        wait_for_slot: bool = True,
    ) -> PageOutcome:
        """Recognise page `page_number` (1-based) once, producing parts for every format in `formats`.

        The page's word model (blocks, lines, words) is built only when `formats` includes JSON.

        Waits for a free worker by default (a job's page should queue, not fail, when sync traffic
        fills the pool); `wait_for_slot=False` raises `Overloaded` instead.
        """
        deadline = Deadline.after(timeout or self.settings.timeout_seconds)
        self._pool_or_fail()
        options = self.validate(options)

        def open_one() -> Document:
            document = open_document(data, self.job_limits, options.dpi, deadline, pages=(page_number,))
            try:
                document.selected((page_number,))
            except OcrError:
                document.close()
                raise
            return document

        document = await self.offload(open_one, deadline=deadline)
        try:
            numbers = (page_number,)
            pages = await self._recognise(document, numbers, options, formats, deadline, first_waits=wait_for_slot)
        finally:
            document.close()
        return pages[0]

    def assemble(
        self, pages: Sequence[PageOutcome], *, language: str, sha256: str, total_ms: float | None = None
    ) -> DocumentResult:
        """The document result from its pages (in the order given)."""
        decode = sum(p.page.timings.decode_ms for p in pages)
        prep = sum(p.page.timings.preprocess_ms for p in pages)
        recognize = sum(p.page.timings.recognize_ms for p in pages)
        timings = DocumentTimings(
            decode,
            prep,
            recognize,
            total_ms if total_ms is not None else decode + prep + recognize,
            max((p.page.timings.parallel for p in pages), default=1),
        )
        engine = EngineInfo(
            self._backend.info.name if self._backend else self.settings.engine, library_versions()["tesseract"]
        )
        return DocumentResult(tuple(p.page for p in pages), language, engine, sha256, timings)

    def combine(
        self, pages: Sequence[PageOutcome], fmt: OutputFormat, *, language: str, sha256: str, title: str = "document"
    ) -> bytes:
        """Merge pages into one document of `fmt` (each page must have been recognised with `fmt` asked for)."""
        if fmt is OutputFormat.JSON:
            return _json_body(self.assemble(pages, language=language, sha256=sha256))
        missing = [p.page.number for p in pages if fmt not in p.parts]
        if missing:
            raise ValueError(f"pages {missing} were recognised without the {fmt.value} format")
        system = f"tesseract {library_versions()['tesseract']}"
        return combine_parts(fmt, [(p.page.number, p.parts[fmt]) for p in pages], title=title, system=system)

    # -- internals -------------------------------------------------------------------------------

    def _pool_or_fail(self) -> WorkerPool:
        if self._pool is None:
            raise ServiceUnavailable("the OCR engine is not running (starting up or shutting down)")
        return self._pool

    def _open(
        self,
        data: bytes,
        options: OcrOptions,
        sha256: str | None = None,
        deadline: Deadline | None = None,
        *,
        limits: Settings | None = None,
    ) -> tuple[Document, DocumentInfo]:
        document = open_document(data, limits or self.settings, options.dpi, deadline, pages=options.pages)
        try:
            pages = document.selected(options.pages)
        except OcrError:
            document.close()
            raise
        digest = sha256 or hashlib.sha256(data).hexdigest()
        return document, DocumentInfo(document.kind, document.media_type, document.page_count, pages, digest)

    async def _recognise(
        self,
        document: Document | _PreDecoded,
        numbers: tuple[int, ...],
        options: OcrOptions,
        formats: set[OutputFormat] | frozenset[OutputFormat],
        deadline: Deadline,
        *,
        first_waits: bool,
    ) -> list[PageOutcome]:
        """Every page of `numbers` on the pool, producing `formats` (the word model only when JSON is among them)."""
        pool = self._pool_or_fail()
        rendered, with_words = _tesseract_formats(formats), OutputFormat.JSON in formats
        tasks: list[asyncio.Task[PageOutcome]] = []
        try:
            async with asyncio.TaskGroup() as group:
                for index, number in enumerate(numbers):
                    work = _page_work(
                        document, number, options, rendered, deadline, with_words=with_words, spread=self._spread
                    )
                    waits = first_waits or index > 0
                    tasks.append(group.create_task(pool.submit(work, deadline=deadline, wait_for_slot=waits)))
        except BaseExceptionGroup as failure:
            raise _first_error(failure) from None
        return [task.result() for task in tasks]


class _PreDecoded:
    """A one-page stand-in for `Document` holding pixels already decoded (the self-test image)."""

    def __init__(self, page: PageImage) -> None:
        self._page = page

    def load_page(self, number: int, deadline: Deadline | None = None) -> PageImage:
        return self._page


def _page_work(
    document: Document | _PreDecoded,
    number: int,
    options: OcrOptions,
    formats: frozenset[OutputFormat],
    deadline: Deadline,
    *,
    with_words: bool,
    spread: Spreader | None = None,
) -> Callable[[Recognizer], PageOutcome]:
    """The closure a worker thread runs for one page: decode, preprocess, recognise, map boxes back.

    `formats` are the Tesseract renderings to produce; `with_words` builds the word model (JSON only).
    With `spread`, a large page on an idle pool is recognised on several workers (`page_parallel.py`).
    """

    def work(recognizer: Recognizer) -> PageOutcome:
        started = time.perf_counter()
        page = document.load_page(number, deadline)
        decoded = time.perf_counter()
        pixels, report = _preprocess(page, options, deadline)
        prepared = time.perf_counter()
        deadline.check(f"page {number}: recognition")
        remaining_ms = max(1, int(deadline.remaining() * 1000))
        scale = float(report.get("scale", 1.0) or 1.0) if report else 1.0
        # Rescaling changes pixels per inch, not inches: PDF pages keep their physical size.
        dpi = round((page.dpi or ASSUMED_DPI) * scale)
        request = RecognitionRequest(
            number,
            options.lang,
            options.psm,
            options.oem,
            dpi,
            formats,
            remaining_ms,
            with_words=with_words,
            deadline=deadline,
        )
        render, regions = recognize_page(recognizer, pixels, request, spread)
        recognized = time.perf_counter()
        blocks = _to_page_coordinates(render, report, page)
        result = PageResult(
            number=number,
            width=page.width,
            height=page.height,
            text=render.text.strip(),
            blocks=blocks,
            dpi=page.dpi,
            image_width=int(pixels.shape[1]),
            image_height=int(pixels.shape[0]),
            coordinate_space="original",
            preprocessing=report,
            timings=PageTimings(
                (decoded - started) * 1000, (prepared - decoded) * 1000, (recognized - prepared) * 1000, regions
            ),
            engine_confidence=render.confidence,
        )
        return PageOutcome(result, render.parts)

    return work


def _preprocess(page: PageImage, options: OcrOptions, deadline: Deadline) -> tuple[PixelArray, dict[str, Any]]:
    """Run the preprocessing steps under `deadline` (they expect OpenCV's BGR order for colour pages)."""
    pixels = page.pixels
    if pixels.ndim == 3:
        pixels = np.ascontiguousarray(pixels[:, :, ::-1])
    number = page.number

    def checkpoint(step: str) -> None:
        deadline.check(f"page {number}: preprocessing ({step})")

    try:
        image, report = preprocess(pixels, options.preprocess, dpi=page.dpi, checkpoint=checkpoint)
    except ValueError as exc:
        raise InvalidParameter(f"preprocess: {exc}", param="preprocess") from None
    # The report goes into JSON responses and job stores: make sure no numpy scalar slipped into it.
    return image, _plain(report)


def _plain(value: Any) -> Any:
    """`value` with numpy scalars and arrays as plain Python values, tuples as lists and keys as strings.

    What a `json.dumps`/`json.loads` round trip would give, in a fraction of its time (this runs
    for every page): exact type checks first, since almost every node is a plain str, number,
    dict or list, and plain leaves are copied in the loop without a call each.
    Anything else JSON cannot hold fails later, where the body is serialised.
    """
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        plain: dict[str, Any] = {}
        for key, item in value.items():
            item_kind = type(item)
            if not (item_kind is str or item_kind is float or item_kind is bool or item_kind is int or item is None):
                item = _plain(item)
            plain[key if type(key) is str else str(key)] = item
        return plain
    if kind is list or kind is tuple:
        return [_plain(item) for item in value]
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _to_page_coordinates(render: PageRender, report: dict[str, Any], page: PageImage) -> tuple[Block, ...]:
    """Map every box from the preprocessed image back to the page the client sent."""
    if not render.blocks:
        return render.blocks
    transform = report.get("transform") if report else None
    if not isinstance(transform, dict) or "to_source" not in transform:
        return render.blocks
    to_source = transform["to_source"]
    if np.allclose(np.asarray(to_source, dtype=np.float64), np.eye(3)):
        return render.blocks
    size = (page.width, page.height)

    def box(raw: BBox) -> BBox:
        x, y, w, h = map_bbox(raw, to_source, size)
        return (x, y, w, h)

    def line(raw: Line) -> Line:
        return Line(tuple(Word(w.text, w.confidence, box(w.bbox)) for w in raw.words), box(raw.bbox))

    return tuple(
        Block(tuple(Paragraph(tuple(map(line, p.lines)), box(p.bbox)) for p in block.paragraphs), box(block.bbox))
        for block in render.blocks
    )


def _tesseract_formats(formats: set[OutputFormat] | frozenset[OutputFormat]) -> frozenset[OutputFormat]:
    """JSON comes from the model, every other format from Tesseract's renderers."""
    return frozenset(fmt for fmt in formats if fmt is not OutputFormat.JSON)


def _first_error(failure: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that explains a failed document: a client-visible error first, then anything else."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [failure]
    while stack:
        item = stack.pop(0)
        if isinstance(item, BaseExceptionGroup):
            stack.extend(item.exceptions)
        elif not isinstance(item, asyncio.CancelledError):
            flat.append(item)
    for item in flat:
        if isinstance(item, OcrError):
            return item
    return flat[0] if flat else asyncio.CancelledError()


def _json_body(result: DocumentResult) -> bytes:
    return json.dumps(result.to_json(), ensure_ascii=False, separators=(",", ":")).encode()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _self_test_image() -> PixelArray:
    """A small grey image of `SELF_TEST_TEXT` drawn with Pillow's bundled font (no system font needed)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (520, 90), 255)
    ImageDraw.Draw(image).text((20, 20), SELF_TEST_TEXT, fill=0, font=ImageFont.load_default(size=40))
    return np.asarray(image, dtype=np.uint8)
