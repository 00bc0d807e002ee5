"""Small test pages rendered from known text, and the error rate the tests judge them by."""

from __future__ import annotations

from pathlib import Path

import cv2
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


def skew(page: Gray, degrees: float) -> Gray:
    """Rotate counter-clockwise by `degrees` on a grown white canvas, as a crooked scan looks."""
    height, width = page.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(width * cos + height * sin), int(width * sin + height * cos))
    matrix[0, 2] += (size[0] - width) / 2
    matrix[1, 2] += (size[1] - height) / 2
    return np.asarray(cv2.warpAffine(page, matrix, size, flags=cv2.INTER_LINEAR, borderValue=255), dtype=np.uint8)
