"""What a caller asks of one recognition, already validated.

`http/` and `cli.py` parse user input into an `OcrOptions` (see `parse_options`); the
engine, preprocessing, cache and jobs only ever see this typed value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

PSM_RANGE = (0, 13)
UNSUPPORTED_PSM = frozenset({0, 2})
"""Tesseract modes that produce no text: 0 only detects orientation, 2 is not implemented."""
OEM_RANGE = (0, 3)
"""Bounds the request parser, the settings (`OCR_DEFAULT_PSM`/`_OEM`) and the operator's spec share."""


class OutputFormat(StrEnum):
    JSON = "json"
    TEXT = "text"
    HOCR = "hocr"
    TSV = "tsv"
    ALTO = "alto"
    PDF = "pdf"


MEDIA_TYPES: dict[OutputFormat, str] = {
    OutputFormat.JSON: "application/json",
    OutputFormat.TEXT: "text/plain; charset=utf-8",
    OutputFormat.HOCR: "text/html; charset=utf-8",
    OutputFormat.TSV: "text/tab-separated-values; charset=utf-8",
    OutputFormat.ALTO: "application/xml",
    OutputFormat.PDF: "application/pdf",
}


PREPROCESS_STEPS: tuple[str, ...] = (
    "orientation",
    "deskew",
    "invert",
    "denoise",
    "illumination",
    "contrast",
    "sharpen",
    "binarize",
    "border",
    "upscale",
)
"""Preprocessing switches a request may set; `auto` decides for each step left unset."""


@dataclass(frozen=True)
class PreprocessOptions:
    """`mode` is `auto` or `none`; `steps` forces individual steps on (True) or off (False)."""

    mode: str = "auto"
    steps: dict[str, bool] = field(default_factory=dict)

    def key(self) -> str:
        forced = ",".join(f"{name}={int(on)}" for name, on in sorted(self.steps.items()))
        return f"{self.mode}[{forced}]"


@dataclass(frozen=True)
class OcrOptions:
    """One recognition request. `pages` are 1-based page numbers, or None for every page."""

    lang: str = "eng"
    psm: int = 3
    oem: int = 1
    dpi: int = 300
    pages: tuple[int, ...] | None = None
    preprocess: PreprocessOptions = field(default_factory=PreprocessOptions)
    format: OutputFormat = OutputFormat.JSON

    def cache_key(self) -> str:
        """Everything that changes the recognised result (not the output format)."""
        pages = "all" if self.pages is None else ",".join(map(str, self.pages))
        return (
            f"lang={self.lang};psm={self.psm};oem={self.oem};dpi={self.dpi};pages={pages};pre={self.preprocess.key()}"
        )
