"""Deterministic test images shared by the benchmarks (and usable by tests).

Every benchmark measures on the same inputs so that their figures compare: small receipt-line
crops (where loading the model dominates) and full 300-DPI A4 pages (where recognition does).
The text comes from a fixed word list and a seeded RNG, so a run is reproducible and the
expected text is known for checking results.
"""

from __future__ import annotations

import io
import random
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)

_WORDS: tuple[str, ...] = tuple(
    " ".join(
        (
            "invoice total amount coffee bread butter milk cheese apple orange receipt paid",
            "cash card change station market street number order table service thank you",
            "visit again quantity price discount morning evening delivery package account balance customer",
            "reference payment tax subtotal",
        )
    ).split()
)

A4_300DPI = (2480, 3508)
"""A4 portrait at 300 DPI, in pixels."""


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font at `size` pixels: DejaVu Sans when installed, else Pillow's bundled font."""
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size=size)


def words(seed: int, count: int) -> list[str]:
    """`count` words chosen by a seeded RNG, so the same seed always gives the same text."""
    rng = random.Random(seed)
    return [rng.choice(_WORDS) for _ in range(count)]


def render_lines(
    lines: list[str], *, font_size: int = 32, margin: int = 24, size: tuple[int, int] | None = None
) -> Image.Image:
    """Black text on white, one entry of `lines` per line; the canvas fits the text unless `size` is given."""
    face = font(font_size)
    line_height = int(font_size * 1.5)
    if size is None:
        widest = max(int(face.getlength(line)) for line in lines) if lines else 0
        size = (widest + 2 * margin, line_height * len(lines) + 2 * margin)
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * line_height), line, fill=0, font=face)
    return image


def receipt_line(seed: int) -> tuple[Image.Image, str]:
    """A small crop holding one receipt line (a few words and a price), and its text."""
    text = " ".join(words(seed, 4)) + f" {seed % 97 + 1}.{seed % 100:02d}"
    return render_lines([text], font_size=32, margin=16), text


def a4_page(seed: int, *, lines: int = 40, words_per_line: int = 9) -> tuple[Image.Image, str]:
    """A full 300-DPI A4 page of body text (about 12 pt), and its text, one line per line."""
    rng = random.Random(seed)
    body = [" ".join(words(rng.randrange(1 << 30), words_per_line)) for _ in range(lines)]
    return render_lines(body, font_size=50, margin=200, size=A4_300DPI), "\n".join(body)


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    """The image encoded in `fmt` (any format Pillow writes), as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()
