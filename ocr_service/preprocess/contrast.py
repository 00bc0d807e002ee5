"""Contrast normalisation: stretch the page so ink is black and paper white.

Faded print, grey photocopies and under-exposed photos leave ink and paper a few dozen levels
apart; the stretch (one lookup table) restores the full range so later thresholds have room.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.measure import Gray, contrast_span, u8

__all__ = ["contrast_span", "stretch"]


def stretch(gray: Gray) -> Outcome:
    """Map the 1st percentile to black and the 99th to white, linearly."""
    low, high = contrast_span(gray)
    if high - low < 1:
        return Outcome(gray, {"low": low, "high": high})
    levels = np.arange(256, dtype=np.float32)
    table = np.clip((levels - low) * 255.0 / (high - low), 0, 255).astype(np.uint8)
    return Outcome(u8(cv2.LUT(gray, table)), {"low": round(low, 1), "high": round(high, 1)})
