"""Documents rendered by the engine tests from known text, in every input format.

Text is drawn with DejaVu Sans (fonts-dejavu-core, installed by `scripts/install-system-deps.sh
--dev`) large and clean enough that Tesseract reads it exactly, so tests can compare words.
"""

from __future__ import annotations

import io
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageFont
from suite_support import FIXED_PDF_DATES

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
MARGIN = 30
FONT_SIZE = 36
LINE_HEIGHT = 60


def font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), size)


def text_image(lines: list[str], *, mode: str = "L", width: int | None = None) -> Image.Image:
    """Black text on white, one entry per line, starting at (MARGIN, MARGIN + i * LINE_HEIGHT)."""
    face = font()
    widest = max(int(face.getlength(line)) for line in lines)
    size = (width or widest + 2 * MARGIN, LINE_HEIGHT * len(lines) + 2 * MARGIN)
    background: int | tuple[int, ...] = 255 if mode == "L" else (255, 255, 255)
    image = Image.new(mode, size, background)
    draw = ImageDraw.Draw(image)
    ink: int | tuple[int, ...] = 0 if mode == "L" else (0, 0, 0)
    for index, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + index * LINE_HEIGHT), line, fill=ink, font=face)
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def multipage(images: list[Image.Image], fmt: str) -> bytes:
    """A multi-page TIFF/GIF/PDF (Pillow writes every frame; PDF pages at 300 DPI)."""
    params: dict[str, object] = {"save_all": True, "append_images": images[1:]}
    if fmt == "PDF":
        params.update(resolution=300.0, **FIXED_PDF_DATES)
    if fmt == "GIF":
        params["disposal"] = 2
    return encode(images[0], fmt, **params)


def pdf_with_page_size(width_pt: float, height_pt: float, pages: int = 1) -> bytes:
    """A PDF of blank pages of the given size in points, made with pypdfium2."""
    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(width_pt, height_pt)
    buffer = io.BytesIO()
    document.save(buffer)
    document.close()
    return buffer.getvalue()


def pdf_text(data: bytes) -> list[str]:
    """The text layer of every page of a PDF, as pdfium extracts it."""
    document = pdfium.PdfDocument(data)
    try:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return texts
    finally:
        document.close()


def dense_page(lines: int = 40, seed: int = 0) -> Image.Image:
    """A page of `lines` lines of varied words: long enough to recognise that time limits can cut it."""
    vocabulary = [
        "invoice",
        "total",
        "amount",
        "coffee",
        "bread",
        "butter",
        "milk",
        "cheese",
        "apple",
        "orange",
        "receipt",
        "paid",
        "card",
    ]
    rows = [" ".join(vocabulary[(seed + i * 7 + j * 3) % len(vocabulary)] for j in range(9)) for i in range(lines)]
    return text_image(rows)
