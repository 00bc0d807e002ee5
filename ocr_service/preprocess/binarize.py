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
_CROP = 1500


def sharpness(gray: Gray) -> float:
    """Edge steepness: the strongest gradients relative to the ink-to-paper contrast.

    About 0.5 or more for crisp print (ink to paper within a pixel or two); blur spreads each
    edge over several pixels and lowers it towards 0.1. Measured at full resolution on a central
    crop, because downscaling would sharpen the edges it is measuring.
    """
    height, width = gray.shape
    top, left = max(0, (height - _CROP) // 2), max(0, (width - _CROP) // 2)
    crop = gray[top : top + _CROP, left : left + _CROP]
    gx = cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.magnitude(gx, gy) / 4.0
    low, high = np.percentile(crop, (2, 98))
    return float(np.percentile(magnitude, 99.5)) / max(float(high - low), 1.0)


def otsu(gray: Gray) -> Outcome:
    threshold, out = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return Outcome(u8(out), {"method": "otsu", "threshold": round(float(threshold), 1)})


def sauvola(gray: Gray, window: int) -> Outcome:
    """Sauvola's threshold T = m * (1 + k * (s / R - 1)) over a `window`-pixel square."""
    window = max(15, window | 1)
    image = gray.astype(np.float64)
    mean = cv2.boxFilter(image, -1, (window, window), borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.boxFilter(image * image, -1, (window, window), borderType=cv2.BORDER_REFLECT)
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    threshold = mean * (1.0 + SAUVOLA_K * (std / SAUVOLA_R - 1.0))
    out = u8(np.where(image > threshold, 255, 0))
    return Outcome(out, {"method": "sauvola", "window": window, "k": SAUVOLA_K})
