"""What every engine takes and returns, so the pool, the pipeline and the renderers need not care which runs.

An `EngineBackend` describes an engine (name, version) and makes `Recognizer`s; the worker pool
makes ONE recognizer per worker thread, so a recognizer may keep warm, non-thread-safe state
(tesserocr's loaded models) without locking. `Recognizer.recognize` does exactly one recognition
of one page and returns the model plus every requested Tesseract rendering of that page
(`PageRender.parts`, see `engine/renderers.py` for what each part holds and how parts combine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ocr_service.deadline import Deadline
from ocr_service.documents import PixelArray
from ocr_service.engine.model import Block, EngineInfo
from ocr_service.engine.regions import PageLayout
from ocr_service.errors import InvalidParameter
from ocr_service.options import OutputFormat

LEGACY_OEMS = frozenset({0, 2})
"""Engine modes that need Tesseract's legacy (non-LSTM) models, which the tessdata_fast/best packs lack."""


def engine_init_failed(lang: str, oem: int) -> InvalidParameter:
    """The one 400 every engine raises when Tesseract cannot start for `lang`/`oem`.

    Worded for the client: which choice to change, never Tesseract's own message (it names
    the server's tessdata path).
    """
    if oem in LEGACY_OEMS:
        return InvalidParameter(
            f"oem={oem} needs Tesseract's legacy models, which are not installed here for lang={lang}; "
            "use oem=1 (LSTM) or oem=3 (the best available).",
            param="oem",
        )
    return InvalidParameter(f"Tesseract cannot start with lang={lang} oem={oem}.", param="oem")


@dataclass(frozen=True)
class RecognitionRequest:
    """One page to recognise. `timeout_ms` <= 0 means no limit; `dpi` None lets Tesseract estimate it.

    `with_words` asks for the word model (blocks > paragraphs > lines > words with boxes). Only JSON needs it,
    and walking Tesseract's result iterator costs about a millisecond per receipt line, so text,
    hOCR and TSV requests skip it and get the engine's own mean confidence instead.

    `deadline`, when given, is the page's `Deadline`: an engine that can stop a recognition in
    progress registers its stop with `deadline.on_cancel` for the duration of the native call.
    """

    page_number: int
    lang: str
    psm: int
    oem: int
    dpi: int | None
    formats: frozenset[OutputFormat]
    timeout_ms: int = 0
    with_words: bool = True
    deadline: Deadline | None = field(default=None, compare=False)
    region: tuple[int, int, int, int] | None = None
    """Recognise only this rectangle (left, top, right, bottom in page pixels) as one block of text:
    a piece of a page spread over several workers (`ocr_service/page_parallel.py`)."""


@dataclass(frozen=True)
class PageRender:
    """The engine's answer for one page: the model's blocks, its plain text, and per-format render parts.

    `confidence` is the engine's mean word confidence when the word model was not built
    (`with_words=False`, `blocks` empty); None when it was (the model's words carry it).
    """

    blocks: tuple[Block, ...]
    text: str
    parts: dict[OutputFormat, bytes]
    confidence: float | None = None


class Recognizer(Protocol):
    """A per-thread recognizer; never shared between threads."""

    def recognize(self, pixels: PixelArray, request: RecognitionRequest) -> PageRender: ...

    def close(self) -> None: ...


@runtime_checkable
class RegionRecognizer(Recognizer, Protocol):
    """A recognizer that can analyse a page's layout first and recognise one `request.region` of it."""

    def analyse(self, pixels: PixelArray, request: RecognitionRequest) -> PageLayout: ...


class EngineBackend(Protocol):
    """An engine kind: its identity and a factory for per-thread recognizers."""

    @property
    def info(self) -> EngineInfo: ...

    def new_recognizer(self) -> Recognizer: ...


ASSUMED_DPI = 300
"""Resolution given to Tesseract when the file declares none: both engines must assume the same one
(tesserocr would otherwise see 96 from its in-memory BMP, the CLI 70 from the PNM), it sizes PDF
pages sensibly, and it is the resolution Tesseract's models are tuned for."""

FILE_RENDERED_FORMATS = frozenset({OutputFormat.ALTO, OutputFormat.PDF})
"""Formats Tesseract only writes through its file renderers (the others come from in-memory calls)."""
