"""Adaptive binarisation: Otsu when the page is even, Sauvola when brightness still varies locally.

Tesseract thresholds every page itself with a global Otsu; handing it a clean black-and-white page
helps when that global threshold would fail (residual shading, stains) but hurts on blurred text,
where any threshold merges strokes. The policy decides; this module only does it well.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.measure import Gray, u8

SAUVOLA_K = 0.2
SAUVOLA_R = 128.0


def otsu(gray: Gray) -> Outcome:
    threshold, out = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return Outcome(u8(out), {"method": "otsu", "threshold": round(float(threshold), 1)})


def sauvola(gray: Gray, window: int) -> Outcome:
    """Sauvola's threshold T = m * (1 + k * (s / R - 1)) over a `window`-pixel square.

    Computed in float32 with in-place operations: on a 40-megapixel page each temporary is
    160 MB, so the number of them matters.
    """
    window = max(15, window | 1)
    image = gray.astype(np.float32)
    mean = np.asarray(cv2.boxFilter(image, -1, (window, window), borderType=cv2.BORDER_REFLECT), dtype=np.float32)
    spread = np.asarray(
        cv2.sqrBoxFilter(image, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT), dtype=np.float32
    )
    spread -= mean * mean
    np.maximum(spread, 0.0, out=spread)
    np.sqrt(spread, out=spread)
    # threshold = mean * (1 + k * (std / R - 1)), built in place in `spread`.
    spread *= SAUVOLA_K / SAUVOLA_R
    spread += 1.0 - SAUVOLA_K
    spread *= mean
    out = u8(cv2.compare(image, spread, cv2.CMP_GT))
    return Outcome(out, {"method": "sauvola", "window": window, "k": SAUVOLA_K})
