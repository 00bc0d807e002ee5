"""Rescaling so text reaches the size Tesseract reads best.

Tesseract's LSTM models were trained on text lines whose letters are roughly 20-40 pixels high;
much smaller text (a 150-DPI scan, a thumbnail) loses strokes to its internal binarisation, and
much larger text (a 1200-DPI scan, a close-up photo) only costs time. The step measures the
character height and scales toward `TARGET_HEIGHT`, never past `MAX_OUTPUT_PIXELS`.
"""

from __future__ import annotations

import cv2

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.geometry import scaling
from ocr_service.preprocess.measure import Gray, u8

TARGET_HEIGHT = 26.0
"""Median ink-blob height (close to the x-height) aimed for, in pixels."""
SMALL_HEIGHT = 16.0
"""Text whose median blob is shorter than this is upscaled."""
LARGE_HEIGHT = 90.0
"""Text whose median blob is taller than this is downscaled (time, not accuracy)."""
MAX_UPSCALE = 4.0
MAX_OUTPUT_PIXELS = 40_000_000
MAX_OUTPUT_SIDE = 32767
"""Leptonica's side limit (`documents.MAX_PAGE_SIDE`): an accepted long line must stay recognisable once enlarged."""


def scale_for(char_height: float | None, width: int, height: int) -> float:
    """The factor that brings `char_height` into range; 1.0 when it already is or is unknown."""
    if char_height is None:
        factor = 1.0
    elif char_height < SMALL_HEIGHT:
        factor = min(MAX_UPSCALE, TARGET_HEIGHT / char_height)
    elif char_height > LARGE_HEIGHT:
        factor = TARGET_HEIGHT * 1.5 / char_height
    else:
        factor = 1.0
    pixel_cap = (MAX_OUTPUT_PIXELS / max(width * height, 1)) ** 0.5
    factor = min(factor, pixel_cap)
    return round(float(factor), 3)


def resize(gray: Gray, factor: float) -> Outcome:
    """Resize by `factor` (cubic when enlarging, area averaging when shrinking)."""
    height, width = gray.shape
    factor = min(factor, MAX_OUTPUT_SIDE / max(width, height))
    interpolation = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    out = cv2.resize(gray, size, interpolation=interpolation)
    exact_x, exact_y = size[0] / width, size[1] / height
    matrix = scaling(exact_x)
    matrix[1, 1] = exact_y
    return Outcome(u8(out), {"factor": factor, "width": size[0], "height": size[1]}, matrix)
