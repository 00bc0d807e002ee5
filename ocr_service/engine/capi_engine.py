"""The warm in-process engine over libtesseract's C API through ctypes: no native call holds the GIL.

tesserocr keeps the GIL in `ProcessPages` (the only way it offers ALTO and PDF) and in its text
getters, so one ALTO/PDF render froze every other thread, the event loop included, for seconds.
ctypes releases the GIL around every foreign call, so here each worker thread drives its own
`TessBaseAPI` directly and Python keeps running while Tesseract works, whatever the format.

One recognition per page whatever the formats: `TessBaseAPIRecognize` runs once with a monitor
(`ETEXT_DESC`) that carries the time limit, and every format is read from that result:
text, hOCR, TSV and the word model from the API's getters and result iterator, ALTO and the
searchable PDF from Tesseract's own renderers (`TessAltoRendererCreate`/`TessPDFRendererCreate`
+ `BeginDocument/AddImage/EndDocument`), which read the existing result instead of recognising
again. Those renderers only write files, so they write into a per-page temp dir. Their output is
byte for byte what `tesseract page out alto pdf` writes, which is what `engine/renderers.py` merges.

Cancel: `cancel()` (any thread) moves the monitor's deadline to "now", which Tesseract checks
between words; no Python callback runs inside Tesseract (a ctypes callback would take the GIL on
every word). While Recognize runs, the request's `Deadline` (when it has one) holds `cancel` as
its hook, so the worker pool stopping a page (504, client gone, job cancelled) stops Tesseract,
and the ALTO/PDF renders after it are skipped once the deadline is cancelled or past.

Each worker thread keeps its initialised APIs in a small LRU keyed by (lang, psm, oem): loading a
model costs far more than recognising a receipt line.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ocr_service.documents import PixelArray
from ocr_service.engine.base import PageRender, RecognitionRequest, engine_init_failed
from ocr_service.engine.model import BBox, Block, EngineInfo, Word, WordPlace, nest_words
from ocr_service.engine.regions import REGION_PSM, Edges, LayoutBlock, PageLayout
from ocr_service.engine.renderers import hocr_page_part
from ocr_service.errors import InvalidParameter, RecognitionTimeout
from ocr_service.options import OutputFormat

_APIS_PER_THREAD = 3
_RIL_BLOCK, _RIL_PARA, _RIL_TEXTLINE, _RIL_WORD = 0, 1, 2, 3
_CANCELLED_DEADLINE_MS = 1
"""`TessMonitorSetDeadlineMSecs` ignores values <= 0, so a cancel sets the deadline 1 ms ahead."""

_VOID = ctypes.c_void_p
_INT = ctypes.c_int
_CHAR_P = ctypes.c_char_p
_INT_P = ctypes.POINTER(ctypes.c_int)


class CapiUnavailableError(RuntimeError):
    """libtesseract or Leptonica cannot be loaded here."""


def _load(names: tuple[str, ...]) -> ctypes.CDLL:
    for name in names:
        try:
            return ctypes.CDLL(name)  # CDLL (not PyDLL): every call releases the GIL
        except OSError:
            continue
    found = ctypes.util.find_library(names[0].removeprefix("lib").split(".so")[0])
    if found:
        return ctypes.CDLL(found)
    raise CapiUnavailableError(f"cannot load any of {', '.join(names)}")


_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "TessVersion": (_CHAR_P, []),
    "TessDeleteText": (None, [_VOID]),
    "TessBaseAPICreate": (_VOID, []),
    "TessBaseAPIDelete": (None, [_VOID]),
    "TessBaseAPIInit2": (_INT, [_VOID, _CHAR_P, _CHAR_P, _INT]),
    "TessBaseAPISetPageSegMode": (None, [_VOID, _INT]),
    "TessBaseAPISetVariable": (_INT, [_VOID, _CHAR_P, _CHAR_P]),
    "TessBaseAPISetImage": (None, [_VOID, _CHAR_P, _INT, _INT, _INT, _INT]),
    "TessBaseAPISetInputImage": (None, [_VOID, _VOID]),
    "TessBaseAPISetSourceResolution": (None, [_VOID, _INT]),
    "TessBaseAPIRecognize": (_INT, [_VOID, _VOID]),
    "TessBaseAPISetRectangle": (None, [_VOID, _INT, _INT, _INT, _INT]),
    "TessBaseAPIAnalyseLayout": (_VOID, [_VOID]),
    "TessPageIteratorDelete": (None, [_VOID]),
    "TessPageIteratorNext": (_INT, [_VOID, _INT]),
    "TessPageIteratorIsAtFinalElement": (_INT, [_VOID, _INT, _INT]),
    "TessPageIteratorBlockType": (_INT, [_VOID]),
    "TessBaseAPIGetUTF8Text": (_VOID, [_VOID]),
    "TessBaseAPIGetHOCRText": (_VOID, [_VOID, _INT]),
    "TessBaseAPIGetTsvText": (_VOID, [_VOID, _INT]),
    "TessBaseAPIMeanTextConf": (_INT, [_VOID]),
    "TessBaseAPIGetDatapath": (_CHAR_P, [_VOID]),
    "TessBaseAPIClear": (None, [_VOID]),
    "TessBaseAPIEnd": (None, [_VOID]),
    "TessBaseAPIGetIterator": (_VOID, [_VOID]),
    "TessResultIteratorDelete": (None, [_VOID]),
    "TessResultIteratorNext": (_INT, [_VOID, _INT]),
    "TessResultIteratorGetUTF8Text": (_VOID, [_VOID, _INT]),
    "TessResultIteratorConfidence": (ctypes.c_float, [_VOID, _INT]),
    "TessResultIteratorGetPageIterator": (_VOID, [_VOID]),
    "TessPageIteratorBegin": (None, [_VOID]),
    "TessPageIteratorBoundingBox": (_INT, [_VOID, _INT, _INT_P, _INT_P, _INT_P, _INT_P]),
    "TessAltoRendererCreate": (_VOID, [_CHAR_P]),
    "TessPDFRendererCreate": (_VOID, [_CHAR_P, _CHAR_P, _INT]),
    "TessDeleteResultRenderer": (None, [_VOID]),
    "TessResultRendererBeginDocument": (_INT, [_VOID, _CHAR_P]),
    "TessResultRendererAddImage": (_INT, [_VOID, _VOID]),
    "TessResultRendererEndDocument": (_INT, [_VOID]),
    "TessMonitorCreate": (_VOID, []),
    "TessMonitorDelete": (None, [_VOID]),
    "TessMonitorSetDeadlineMSecs": (None, [_VOID, _INT]),
    "TessBaseAPIDetectOrientationScript": (
        _INT,
        [_VOID, _INT_P, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(_CHAR_P), ctypes.POINTER(ctypes.c_float)],
    ),
}
_LEPT_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "pixReadMem": (_VOID, [_CHAR_P, ctypes.c_size_t]),
}


class _Libraries:
    """libtesseract and Leptonica with their prototypes declared (wrong prototypes crash, not raise)."""

    def __init__(self) -> None:
        self.tess = _load(("libtesseract.so.5", "libtesseract.so"))
        self.lept = _load(("libleptonica.so.6", "libleptonica.so", "liblept.so.5", "liblept.so"))
        for library, signatures in ((self.tess, _SIGNATURES), (self.lept, _LEPT_SIGNATURES)):
            for name, (restype, argtypes) in signatures.items():
                function = getattr(library, name)
                function.restype = restype
                function.argtypes = argtypes

    def take_text(self, pointer: int | None) -> str:
        """Decode and free a `char*` Tesseract allocated (None/NULL -> "")."""
        if not pointer:
            return ""
        try:
            return ctypes.string_at(pointer).decode("utf-8", errors="replace")
        finally:
            self.tess.TessDeleteText(pointer)


@functools.cache
def libraries() -> _Libraries:
    return _Libraries()


class CapiBackend:
    """Factory of warm per-thread recognizers over the C API (see module docstring)."""

    def __init__(self) -> None:
        self._libs = libraries()
        version = self._libs.tess.TessVersion()
        self._info = EngineInfo("capi", version.decode() if version else "unknown")

    @property
    def info(self) -> EngineInfo:
        return self._info

    def new_recognizer(self) -> CapiRecognizer:
        return CapiRecognizer(self._libs)

    def check(self, lang: str) -> None:
        """Raise `CapiUnavailableError` unless a model of `lang` initialises from the system tessdata."""
        recognizer = self.new_recognizer()
        try:
            recognizer.api(lang, 3, 1)
        except InvalidParameter as exc:
            raise CapiUnavailableError(str(exc)) from None
        finally:
            recognizer.close()


class CapiRecognizer:
    """Owned by one worker thread: never call `recognize` from two threads (`cancel` is thread-safe)."""

    def __init__(self, libs: _Libraries) -> None:
        self._libs = libs
        self._apis: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._monitor_lock = threading.Lock()
        self._monitor: int | None = None
        self._cancelled = False

    def api(self, lang: str, psm: int, oem: int) -> int:
        key = (lang, psm, oem)
        handle = self._apis.get(key)
        if handle is not None:
            self._apis.move_to_end(key)
            return handle
        tess = self._libs.tess
        created = tess.TessBaseAPICreate()
        if not created:
            raise MemoryError("libtesseract could not create an API")
        handle = int(created)
        if tess.TessBaseAPIInit2(handle, None, lang.encode(), oem) != 0:
            tess.TessBaseAPIDelete(handle)
            raise engine_init_failed(lang, oem)
        tess.TessBaseAPISetPageSegMode(handle, psm)
        self._apis[key] = handle
        while len(self._apis) > _APIS_PER_THREAD:
            _, evicted = self._apis.popitem(last=False)
            tess.TessBaseAPIEnd(evicted)
            tess.TessBaseAPIDelete(evicted)
        return handle

    def close(self) -> None:
        """Free every loaded model (called by the worker thread as it exits)."""
        while self._apis:
            _, handle = self._apis.popitem()
            self._libs.tess.TessBaseAPIEnd(handle)
            self._libs.tess.TessBaseAPIDelete(handle)

    def cancel(self) -> None:
        """Stop the recognition running now (from any thread); Tesseract notices within a word."""
        with self._monitor_lock:
            self._cancelled = True
            if self._monitor is not None:
                self._libs.tess.TessMonitorSetDeadlineMSecs(self._monitor, _CANCELLED_DEADLINE_MS)

    def analyse(self, pixels: PixelArray, request: RecognitionRequest) -> PageLayout:
        """Tesseract's layout analysis of the page (blocks, their kind and lines), before recognising it.

        `page_parallel` runs it on a half-size copy of the page. The call itself cannot be
        interrupted (about 7% of a page's time at that size), so the deadline is checked before it.
        """
        tess = self._libs.tess
        if request.deadline is not None:
            request.deadline.check(f"page {request.page_number}: layout analysis")
        handle = self.api(request.lang, request.psm, request.oem)
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
        tess.TessBaseAPISetImage(handle, pixels.tobytes(), width, height, channels, width * channels)
        if request.dpi:
            tess.TessBaseAPISetSourceResolution(handle, request.dpi)
        iterator = tess.TessBaseAPIAnalyseLayout(handle)
        blocks: list[LayoutBlock] = []
        if iterator:
            coords = [ctypes.c_int() for _ in range(4)]
            refs = [ctypes.byref(c) for c in coords]

            def edges(level: int) -> Edges | None:
                if not tess.TessPageIteratorBoundingBox(iterator, level, *refs):
                    return None
                left, top, right, bottom = (c.value for c in coords)
                return (left, top, right, bottom)

            try:
                more = True
                while more:
                    block = edges(_RIL_BLOCK)
                    kind = int(tess.TessPageIteratorBlockType(iterator))
                    lines: list[Edges] = []
                    while True:
                        line = edges(_RIL_TEXTLINE)
                        if line is not None:
                            lines.append(line)
                        at_end = tess.TessPageIteratorIsAtFinalElement(iterator, _RIL_BLOCK, _RIL_TEXTLINE)
                        more = bool(tess.TessPageIteratorNext(iterator, _RIL_TEXTLINE))
                        if at_end or not more:
                            break
                    if block is not None:
                        blocks.append(LayoutBlock(block, kind, tuple(lines)))
            finally:
                tess.TessPageIteratorDelete(iterator)
        tess.TessBaseAPIClear(handle)
        return PageLayout(width, height, tuple(blocks))

    def recognize(self, pixels: PixelArray, request: RecognitionRequest) -> PageRender:
        tess = self._libs.tess
        handle = self.api(request.lang, request.psm, request.oem)
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
        raw = pixels.tobytes()
        tess.TessBaseAPISetImage(handle, raw, width, height, channels, width * channels)
        if request.dpi:
            tess.TessBaseAPISetSourceResolution(handle, request.dpi)
        if request.region is not None:
            left, top, right, bottom = request.region
            tess.TessBaseAPISetRectangle(handle, left, top, right - left, bottom - top)
            tess.TessBaseAPISetPageSegMode(handle, REGION_PSM)
        try:
            self._recognize(handle, request)
            return self._render(handle, raw, width, height, channels, request)
        finally:
            tess.TessBaseAPIClear(handle)
            if request.region is not None:
                tess.TessBaseAPISetPageSegMode(handle, request.psm)

    def _recognize(self, handle: int, request: RecognitionRequest) -> None:
        tess = self._libs.tess
        monitor = tess.TessMonitorCreate()
        with self._monitor_lock:
            self._monitor, self._cancelled = monitor, False
        if request.timeout_ms > 0:
            tess.TessMonitorSetDeadlineMSecs(monitor, request.timeout_ms)
        started = time.monotonic()
        stop = request.deadline.on_cancel(self.cancel) if request.deadline is not None else contextlib.nullcontext()
        try:
            with stop:  # registered after the monitor: a cancel that came first fires at once
                failed = tess.TessBaseAPIRecognize(handle, monitor) != 0
        finally:
            with self._monitor_lock:
                self._monitor = None
                cancelled = self._cancelled
            tess.TessMonitorDelete(monitor)
        elapsed_ms = (time.monotonic() - started) * 1000
        # A page stopped at its deadline or by `cancel` fails (-1), like one Tesseract could not read:
        # which of them happened is told by the flag and the clock.
        if cancelled:
            raise RecognitionTimeout(f"page {request.page_number}: recognition was cancelled")
        if request.timeout_ms > 0 and elapsed_ms >= request.timeout_ms * 0.9:
            raise RecognitionTimeout(f"page {request.page_number}: recognition stopped at the time limit")
        if failed:
            raise RuntimeError(f"page {request.page_number}: Tesseract failed to recognise the page")

    def _render(
        self, handle: int, raw: bytes, width: int, height: int, channels: int, request: RecognitionRequest
    ) -> PageRender:
        libs, tess = self._libs, self._libs.tess
        index = request.page_number - 1
        parts: dict[OutputFormat, bytes] = {}
        text = libs.take_text(tess.TessBaseAPIGetUTF8Text(handle))
        if OutputFormat.TEXT in request.formats:
            parts[OutputFormat.TEXT] = text.encode()
        if OutputFormat.HOCR in request.formats:
            hocr = libs.take_text(tess.TessBaseAPIGetHOCRText(handle, index))
            # A region's hOCR stays raw: `page_parallel` merges the regions, then makes the page part.
            parts[OutputFormat.HOCR] = (hocr if request.region else hocr_page_part(hocr, request.page_number)).encode()
        if OutputFormat.TSV in request.formats:
            parts[OutputFormat.TSV] = libs.take_text(tess.TessBaseAPIGetTsvText(handle, index)).encode()
        if OutputFormat.ALTO in request.formats or OutputFormat.PDF in request.formats:
            if request.deadline is not None:
                request.deadline.check(f"page {request.page_number}: rendering")
            parts.update(self._file_renders(handle, raw, width, height, channels, request))
        if request.with_words:
            blocks, confidence = self._blocks(handle), None
        else:
            blocks, confidence = (), float(tess.TessBaseAPIMeanTextConf(handle))
        return PageRender(blocks=blocks, text=text, parts=parts, confidence=confidence)

    def _file_renders(
        self, handle: int, raw: bytes, width: int, height: int, channels: int, request: RecognitionRequest
    ) -> dict[OutputFormat, bytes]:
        """ALTO and PDF through Tesseract's renderers from the result already in the API."""
        tess, lept = self._libs.tess, self._libs.lept
        parts: dict[OutputFormat, bytes] = {}
        pix: int | None = None
        with tempfile.TemporaryDirectory(prefix="catalyst-ocr-") as tmp:
            # The title ProcessPages gives (Tesseract's `document_title`, empty); no input name: the PDF
            # renderer would try to read that file, and `renderers.combine` names ALTO's fileName itself.
            title = b""
            renderers: list[tuple[OutputFormat, int, Path]] = []
            try:
                if OutputFormat.PDF in request.formats:
                    # The PDF renderer embeds the INPUT image (what ProcessPages would have read from the file).
                    magic = b"P5" if channels == 1 else b"P6"
                    pnm = magic + f"\n{width} {height}\n255\n".encode() + (raw if channels in (1, 3) else _rgb(raw))
                    pix = lept.pixReadMem(pnm, len(pnm))
                    if not pix:
                        raise RuntimeError(f"page {request.page_number}: Leptonica could not read the page")
                    tess.TessBaseAPISetInputImage(handle, pix)  # takes ownership (Clear/next Set destroys it)
                    base = Path(tmp) / "pdf"
                    datadir = tess.TessBaseAPIGetDatapath(handle)
                    pdf = tess.TessPDFRendererCreate(str(base).encode(), datadir, 0)
                    renderers.append((OutputFormat.PDF, pdf, base))
                if OutputFormat.ALTO in request.formats:
                    base = Path(tmp) / "alto"
                    renderers.append((OutputFormat.ALTO, tess.TessAltoRendererCreate(str(base).encode()), base))
                for fmt, renderer, _ in renderers:
                    ok = (
                        renderer
                        and tess.TessResultRendererBeginDocument(renderer, title)
                        and tess.TessResultRendererAddImage(renderer, handle)
                        and tess.TessResultRendererEndDocument(renderer)
                    )
                    if not ok:
                        raise RuntimeError(f"page {request.page_number}: Tesseract could not render {fmt}")
                for fmt, renderer, base in renderers:
                    tess.TessDeleteResultRenderer(renderer)  # flushes and closes its file
                    suffix = ".pdf" if fmt is OutputFormat.PDF else ".xml"
                    parts[fmt] = base.with_suffix(suffix).read_bytes()
                renderers.clear()
            finally:
                for _, renderer, _ in renderers:
                    if renderer:
                        tess.TessDeleteResultRenderer(renderer)
                if pix is not None:
                    tess.TessBaseAPISetInputImage(handle, None)  # the API owns the Pix: this destroys it
        return parts

    def _blocks(self, handle: int) -> tuple[Block, ...]:
        """Walk Tesseract's ResultIterator word by word; `nest_words` opens each block/paragraph/line."""
        libs, tess = self._libs, self._libs.tess
        iterator = tess.TessBaseAPIGetIterator(handle)
        if not iterator:
            return ()
        words: list[WordPlace] = []
        page_iterator = tess.TessResultIteratorGetPageIterator(iterator)
        coords = [ctypes.c_int() for _ in range(4)]
        refs = [ctypes.byref(c) for c in coords]

        def box(level: int) -> BBox:
            if not tess.TessPageIteratorBoundingBox(page_iterator, level, *refs):
                return (0, 0, 0, 0)
            left, top, right, bottom = (c.value for c in coords)
            return (left, top, right - left, bottom - top)

        try:
            tess.TessPageIteratorBegin(page_iterator)
            while True:
                text = libs.take_text(tess.TessResultIteratorGetUTF8Text(iterator, _RIL_WORD))
                if text.strip():
                    confidence = round(float(tess.TessResultIteratorConfidence(iterator, _RIL_WORD)), 2)
                    word = Word(text.strip(), confidence, box(_RIL_WORD))
                    words.append((box(_RIL_BLOCK), box(_RIL_PARA), box(_RIL_TEXTLINE), word))
                if not tess.TessResultIteratorNext(iterator, _RIL_WORD):
                    break
        finally:
            tess.TessResultIteratorDelete(iterator)
        return nest_words(words)


def _rgb(raw: bytes) -> bytes:
    """Drop alpha from RGBA bytes (PNM has no alpha; pages reach the engine as L or RGB anyway)."""
    array = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(array[:, :3]).tobytes()


_osd = threading.local()
_OSD_DPI = 70
"""What Tesseract assumes for an image without a resolution (as tesserocr's OSD ran): same answers, no warning."""


def detect_orientation(gray: PixelArray) -> tuple[int, float, str, float] | None:
    """OSD through the C API (the GIL released, unlike tesserocr's `DetectOrientationScript`, which holds
    it for the whole call: ~0.8 s per A4 page during which the event loop stood still).

    (orientation degrees, confidence, script, script confidence), or None when OSD found too little
    text. Each thread keeps its own warm `osd` API. Raises `CapiUnavailableError` when libtesseract
    or osd.traineddata is missing (callers fall back to another engine).
    """
    libs = libraries()
    tess = libs.tess
    handle = getattr(_osd, "handle", None)
    if handle is None:
        if getattr(_osd, "failed", False):
            raise CapiUnavailableError("osd.traineddata cannot be loaded")
        created = tess.TessBaseAPICreate()
        if not created or tess.TessBaseAPIInit2(created, None, b"osd", 3) != 0:
            if created:
                tess.TessBaseAPIDelete(created)
            _osd.failed = True
            raise CapiUnavailableError("osd.traineddata cannot be loaded")
        tess.TessBaseAPISetPageSegMode(created, 0)  # PSM_OSD_ONLY
        tess.TessBaseAPISetVariable(created, b"debug_file", b"/dev/null")  # as tesserocr: no per-page warnings
        handle = _osd.handle = int(created)
    pixels = np.ascontiguousarray(gray)
    height, width = pixels.shape[:2]
    tess.TessBaseAPISetImage(handle, pixels.tobytes(), width, height, 1, width)
    tess.TessBaseAPISetSourceResolution(handle, _OSD_DPI)
    degrees, confidence, script_confidence = ctypes.c_int(), ctypes.c_float(), ctypes.c_float()
    script = ctypes.c_char_p()
    try:
        found = tess.TessBaseAPIDetectOrientationScript(
            handle,
            ctypes.byref(degrees),
            ctypes.byref(confidence),
            ctypes.byref(script),
            ctypes.byref(script_confidence),
        )
    finally:
        tess.TessBaseAPIClear(handle)
    if not found:
        return None
    name = script.value.decode("utf-8", errors="replace") if script.value else "Unknown"
    return degrees.value, float(confidence.value), name, float(script_confidence.value)
