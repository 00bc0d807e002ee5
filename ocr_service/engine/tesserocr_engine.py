"""The warm in-process engine: tesserocr, one `PyTessBaseAPI` per worker thread and settings combo.

Kept as an option (`OCR_ENGINE=tesserocr`); `auto` prefers `engine/capi_engine.py`, because
tesserocr releases the GIL only in `Recognize`: its `ProcessPages` (below, for ALTO and PDF)
holds it for the whole page, and every other thread, the event loop included, stops meanwhile.

Loading a model costs far more than recognising a receipt line, so each worker thread keeps its
initialised APIs in a small LRU keyed by (lang, psm, oem) and reuses them. The time limit is
Tesseract's own (`Recognize(timeout=ms)` / `ProcessPages(timeout=ms)`): it really stops the
work, where abandoning a thread would not.

One recognition per page whatever the formats: text, hOCR and TSV are read from the API's
in-memory results; ALTO and PDF exist only as Tesseract file renderers, so when they are asked
for, the page is written once to a temp PNM and recognised through `ProcessPages` with those
renderers on — the results stay in the API, so the model and the other formats come from that
same recognition.
"""

from __future__ import annotations

import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import tesserocr
from PIL import Image

from ocr_service.documents import PixelArray
from ocr_service.engine.base import FILE_RENDERED_FORMATS, PageRender, RecognitionRequest, engine_init_failed
from ocr_service.engine.model import BBox, Block, EngineInfo, Word, WordPlace, nest_words
from ocr_service.engine.renderers import hocr_page_part
from ocr_service.errors import RecognitionTimeout
from ocr_service.options import OutputFormat

_APIS_PER_THREAD = 3
_FILE_RENDERER_VARIABLES = {OutputFormat.ALTO: "tessedit_create_alto", OutputFormat.PDF: "tessedit_create_pdf"}
_FILE_SUFFIX = {OutputFormat.ALTO: ".xml", OutputFormat.PDF: ".pdf"}


class TesserocrBackend:
    """Factory of warm per-thread recognizers (see module docstring)."""

    def __init__(self) -> None:
        self._info = EngineInfo("tesserocr", tesserocr.PyTessBaseAPI.Version())

    @property
    def info(self) -> EngineInfo:
        return self._info

    def new_recognizer(self) -> TesserocrRecognizer:
        return TesserocrRecognizer()


class TesserocrRecognizer:
    """Owned by one worker thread: never call it from two threads."""

    def __init__(self) -> None:
        self._apis: OrderedDict[tuple[str, int, int], Any] = OrderedDict()

    def _api(self, lang: str, psm: int, oem: int) -> Any:
        key = (lang, psm, oem)
        api = self._apis.get(key)
        if api is not None:
            self._apis.move_to_end(key)
            return api
        try:
            api = tesserocr.PyTessBaseAPI(lang=lang, psm=psm, oem=oem)
        except RuntimeError:
            raise engine_init_failed(lang, oem) from None
        self._apis[key] = api
        while len(self._apis) > _APIS_PER_THREAD:
            _, evicted = self._apis.popitem(last=False)
            evicted.End()
        return api

    def close(self) -> None:
        """Free every loaded model (called by the worker thread as it exits)."""
        while self._apis:
            _, api = self._apis.popitem()
            api.End()

    def recognize(self, pixels: PixelArray, request: RecognitionRequest) -> PageRender:
        api = self._api(request.lang, request.psm, request.oem)
        parts: dict[OutputFormat, bytes] = {}
        file_formats = request.formats & FILE_RENDERED_FORMATS
        started = time.monotonic()
        if file_formats:
            ok = self._process_with_file_renderers(api, Image.fromarray(pixels), request, file_formats, parts)
        else:
            # Raw pixels straight into Leptonica: no intermediate BMP encoding of the page (as SetImage does).
            pixels = np.ascontiguousarray(pixels)
            height, width = pixels.shape[:2]
            channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
            api.SetImageBytes(pixels.tobytes(), width, height, channels, width * channels)
            if request.dpi:
                api.SetSourceResolution(request.dpi)
            ok = api.Recognize(timeout=max(0, request.timeout_ms))
        if not ok:
            api.Clear()
            elapsed_ms = (time.monotonic() - started) * 1000
            if request.timeout_ms > 0 and elapsed_ms >= request.timeout_ms * 0.9:
                raise RecognitionTimeout(f"page {request.page_number}: recognition stopped at the time limit")
            raise RuntimeError(f"page {request.page_number}: Tesseract failed to recognise the page")
        try:
            index = request.page_number - 1
            text = api.GetUTF8Text()
            if OutputFormat.TEXT in request.formats:
                parts[OutputFormat.TEXT] = text.encode()
            if OutputFormat.HOCR in request.formats:
                parts[OutputFormat.HOCR] = hocr_page_part(api.GetHOCRText(index), request.page_number).encode()
            if OutputFormat.TSV in request.formats:
                parts[OutputFormat.TSV] = api.GetTSVText(index).encode()
            if request.with_words:
                blocks, confidence = _blocks(api), None
            else:
                blocks, confidence = (), float(api.MeanTextConf())
        finally:
            api.Clear()
        return PageRender(blocks=blocks, text=text, parts=parts, confidence=confidence)

    @staticmethod
    def _process_with_file_renderers(
        api: Any,
        image: Image.Image,
        request: RecognitionRequest,
        formats: frozenset[OutputFormat],
        parts: dict[OutputFormat, bytes],
    ) -> bool:
        with tempfile.TemporaryDirectory(prefix="catalyst-ocr-") as tmp:
            source = Path(tmp) / f"page-{request.page_number}.pnm"
            image.save(source, format="PPM")
            for fmt, variable in _FILE_RENDERER_VARIABLES.items():
                api.SetVariable(variable, "1" if fmt in formats else "0")
            api.SetVariable("user_defined_dpi", str(request.dpi or 0))
            try:
                ok = bool(api.ProcessPages(str(Path(tmp) / "out"), str(source), timeout=max(0, request.timeout_ms)))
            finally:
                for variable in _FILE_RENDERER_VARIABLES.values():
                    api.SetVariable(variable, "0")
                api.SetVariable("user_defined_dpi", "0")
            if ok:
                for fmt in formats:
                    parts[fmt] = (Path(tmp) / ("out" + _FILE_SUFFIX[fmt])).read_bytes()
            return ok


def _box(raw: tuple[int, int, int, int] | None) -> BBox:
    if raw is None:
        return (0, 0, 0, 0)
    left, top, right, bottom = raw
    return (int(left), int(top), int(right - left), int(bottom - top))


def _blocks(api: Any) -> tuple[Block, ...]:
    """Walk Tesseract's ResultIterator word by word; `nest_words` opens a block/paragraph/line at each level's start."""
    iterator = api.GetIterator()
    if iterator is None:
        return ()
    ril = tesserocr.RIL
    words: list[WordPlace] = []
    iterator.Begin()
    while True:
        try:
            text = iterator.GetUTF8Text(ril.WORD)
        except RuntimeError:  # tesserocr raises at a position without text, e.g. on a blank page
            text = None
        if text and text.strip():
            word = Word(
                text.strip(), round(float(iterator.Confidence(ril.WORD)), 2), _box(iterator.BoundingBox(ril.WORD))
            )
            block, paragraph, line = (
                _box(iterator.BoundingBox(level)) for level in (ril.BLOCK, ril.PARA, ril.TEXTLINE)
            )
            words.append((block, paragraph, line, word))
        if not iterator.Next(ril.WORD):
            break
    return nest_words(words)
