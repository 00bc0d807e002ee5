"""The recognition result: document > page > block > paragraph > line > word, and its JSON shape.

Frozen dataclasses so that a result can be cached, shared between threads and rendered many
times without anyone mutating it. Every engine builds exactly these values through `nest_words`
(capi and tesserocr from their ResultIterator levels BLOCK/PARA/TEXTLINE/WORD, the CLI engine
from its TSV levels 2-5), so every renderer and the HTTP layer see one shape whatever the engine.

Coordinates: `bbox` is `(x, y, w, h)` in the pixels of the ORIGINAL page (`PageResult.width`
and `.height`). When preprocessing only rescaled the page, the engine's boxes are mapped back;
when it rotated or cropped it, mapping is not exact and the page says so with
`coordinate_space == "preprocessed"` and the size of that image in `image_width/image_height`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

BBox = tuple[int, int, int, int]
"""(x, y, width, height) in page pixels."""


def union(boxes: list[BBox]) -> BBox:
    """The smallest box containing every box in `boxes` (zeros when empty)."""
    if not boxes:
        return (0, 0, 0, 0)
    left = min(b[0] for b in boxes)
    top = min(b[1] for b in boxes)
    right = max(b[0] + b[2] for b in boxes)
    bottom = max(b[1] + b[3] for b in boxes)
    return (left, top, right - left, bottom - top)


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float
    bbox: BBox

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "confidence": self.confidence, "bbox": list(self.bbox)}


@dataclass(frozen=True)
class Line:
    words: tuple[Word, ...]
    bbox: BBox

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)

    @property
    def confidence(self) -> float:
        return mean([word.confidence for word in self.words])

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": self.confidence,
            "bbox": list(self.bbox),
            "words": [word.to_json() for word in self.words],
        }


@dataclass(frozen=True)
class Paragraph:
    """Tesseract's paragraph (RIL_PARA): lines that belong together, as its layout analysis found them."""

    lines: tuple[Line, ...]
    bbox: BBox

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "bbox": list(self.bbox), "lines": [line.to_json() for line in self.lines]}


@dataclass(frozen=True)
class Block:
    paragraphs: tuple[Paragraph, ...]
    bbox: BBox

    @property
    def lines(self) -> tuple[Line, ...]:
        """Every line of the block, paragraphs flattened (what code that needs no paragraphs walks)."""
        return tuple(line for paragraph in self.paragraphs for line in paragraph.lines)

    @property
    def text(self) -> str:
        """Paragraphs separated by a blank line, as in the page's `text`."""
        return "\n\n".join(paragraph.text for paragraph in self.paragraphs)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "bbox": list(self.bbox),
            "paragraphs": [paragraph.to_json() for paragraph in self.paragraphs],
        }


WordPlace = tuple[BBox, BBox, BBox, Word]
"""A word with the boxes of its block, paragraph and line, in reading order."""


def nest_words(words: Iterable[WordPlace]) -> tuple[Block, ...]:
    """Blocks > paragraphs > lines > words from words in reading order.

    A new block, paragraph or line starts where its box changes, which is how the engines walk
    Tesseract's iterator word by word (a skipped blank word may start a level, so the boxes are
    compared rather than trusting IsAtBeginningOf).
    """
    blocks: list[tuple[BBox, list[tuple[BBox, list[tuple[BBox, list[Word]]]]]]] = []
    for block_box, paragraph_box, line_box, word in words:
        if not blocks or blocks[-1][0] != block_box:
            blocks.append((block_box, []))
        paragraphs = blocks[-1][1]
        if not paragraphs or paragraphs[-1][0] != paragraph_box:
            paragraphs.append((paragraph_box, []))
        lines = paragraphs[-1][1]
        if not lines or lines[-1][0] != line_box:
            lines.append((line_box, []))
        lines[-1][1].append(word)
    return tuple(
        Block(
            tuple(
                Paragraph(tuple(Line(tuple(line_words), line_box) for line_box, line_words in lines), paragraph_box)
                for paragraph_box, lines in paragraphs
            ),
            block_box,
        )
        for block_box, paragraphs in blocks
    )


@dataclass(frozen=True)
class PageTimings:
    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    recognize_ms: float = 0.0
    parallel: int = 1
    """Regions the page was recognised in at once on several workers; 1 = whole (`page_parallel.py`)."""

    def to_json(self) -> dict[str, float]:
        return {
            "decode_ms": round(self.decode_ms, 2),
            "preprocess_ms": round(self.preprocess_ms, 2),
            "recognize_ms": round(self.recognize_ms, 2),
            "parallel": self.parallel,
        }


@dataclass(frozen=True)
class PageResult:
    """One recognised page. `text` is the engine's own plain-text rendering (reading order, paragraphs)."""

    number: int
    width: int
    height: int
    text: str
    blocks: tuple[Block, ...]
    dpi: int | None = None
    image_width: int = 0
    image_height: int = 0
    coordinate_space: str = "original"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    timings: PageTimings = field(default_factory=PageTimings)
    engine_confidence: float | None = None
    """The engine's mean word confidence, set when the word model was not built (`blocks` empty):
    a text/hOCR/TSV request skips the model but its metrics still need the page's confidence."""

    @property
    def words(self) -> list[Word]:
        return [word for block in self.blocks for line in block.lines for word in line.words]

    @property
    def confidence(self) -> float:
        """Mean word confidence (0-100); 0 for a page without words."""
        if self.engine_confidence is not None:
            return round(self.engine_confidence, 2)
        return mean([word.confidence for word in self.words])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageResult:
        """Rebuild a page from `to_json()` output (jobs store pages as JSON and merge them later)."""

        def box(raw: list[int]) -> BBox:
            return (int(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]))

        def line(raw: dict[str, Any]) -> Line:
            return Line(
                tuple(Word(w["text"], float(w["confidence"]), box(w["bbox"])) for w in raw["words"]), box(raw["bbox"])
            )

        def paragraphs(block: dict[str, Any]) -> tuple[Paragraph, ...]:
            if "paragraphs" in block:
                return tuple(
                    Paragraph(tuple(line(raw) for raw in p["lines"]), box(p["bbox"])) for p in block["paragraphs"]
                )
            # A page stored by a job before paragraphs existed: its block's lines as one paragraph.
            return (Paragraph(tuple(line(raw) for raw in block["lines"]), box(block["bbox"])),)

        blocks = tuple(Block(paragraphs(block), box(block["bbox"])) for block in data["blocks"])
        image = data.get("image") or {}
        timings = data.get("timings") or {}
        return cls(
            number=int(data["number"]),
            width=int(data["width"]),
            height=int(data["height"]),
            text=str(data["text"]),
            blocks=blocks,
            dpi=data.get("dpi"),
            image_width=int(image.get("width", 0)),
            image_height=int(image.get("height", 0)),
            coordinate_space=str(data.get("coordinate_space", "original")),
            preprocessing=dict(data.get("preprocessing") or {}),
            timings=PageTimings(
                float(timings.get("decode_ms", 0.0)),
                float(timings.get("preprocess_ms", 0.0)),
                float(timings.get("recognize_ms", 0.0)),
                int(timings.get("parallel", 1)),
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "width": self.width,
            "height": self.height,
            "dpi": self.dpi,
            "coordinate_space": self.coordinate_space,
            "image": {"width": self.image_width or self.width, "height": self.image_height or self.height},
            "text": self.text,
            "confidence": self.confidence,
            "blocks": [block.to_json() for block in self.blocks],
            "preprocessing": self.preprocessing,
            "timings": self.timings.to_json(),
        }


@dataclass(frozen=True)
class EngineInfo:
    name: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class DocumentTimings:
    decode_ms: float
    preprocess_ms: float
    recognize_ms: float
    total_ms: float
    parallel: int = 1
    """The most regions any page was recognised in at once (each page's own figure is in its timings)."""

    def to_json(self) -> dict[str, float]:
        return {
            "decode_ms": round(self.decode_ms, 2),
            "preprocess_ms": round(self.preprocess_ms, 2),
            "recognize_ms": round(self.recognize_ms, 2),
            "total_ms": round(self.total_ms, 2),
            "parallel": self.parallel,
        }


@dataclass(frozen=True)
class DocumentResult:
    """A recognised document: the pages asked for, in the order asked."""

    pages: tuple[PageResult, ...]
    language: str
    engine: EngineInfo
    sha256: str
    timings: DocumentTimings

    @property
    def text(self) -> str:
        """Every page's text, pages separated by a form feed (as Tesseract's text renderer does)."""
        return "\f".join(page.text for page in self.pages)

    @property
    def confidence(self) -> float:
        """Mean confidence over every word of the document (over pages' engine confidences without a word model)."""
        if any(page.engine_confidence is not None for page in self.pages):
            return mean([page.confidence for page in self.pages])
        return mean([word.confidence for page in self.pages for word in page.words])

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": self.confidence,
            "language": self.language,
            "engine": self.engine.to_json(),
            "sha256": self.sha256,
            "timings": self.timings.to_json(),
            "pages": [page.to_json() for page in self.pages],
        }
