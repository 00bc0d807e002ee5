"""Small test pages rendered from known text, and the error rate the tests judge them by."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

TEXT_LINES = (
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs today,",
    "then sail away to the harbour of Rotterdam.",
)

Gray = NDArray[np.uint8]


def render(lines: tuple[str, ...] = TEXT_LINES, *, size: int = 40, margin: int = 60) -> Gray:
    """Black text on a white page that fits it, `size` pixels per em."""
    face = ImageFont.truetype(str(FONT_PATH), size)
    line_height = int(size * 1.5)
    width = int(max(face.getlength(line) for line in lines)) + 2 * margin
    page = Image.new("L", (width, line_height * len(lines) + 2 * margin), 255)
    draw = ImageDraw.Draw(page)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * line_height), line, fill=0, font=face)
    return np.asarray(page, dtype=np.uint8).copy()


def truth(lines: tuple[str, ...] = TEXT_LINES) -> str:
    return " ".join(lines)


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate after folding whitespace."""
    hyp, ref = " ".join(hypothesis.split()), " ".join(reference.split())
    return Levenshtein.distance(hyp, ref) / max(len(ref), 1)
