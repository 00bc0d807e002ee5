"""Sharpening of blurred text: unsharp masking sized to the measured blur.

Defocus and motion blur spread each stroke edge over several pixels; Tesseract's threshold then
cuts strokes at the wrong width and merges neighbouring letters. Subtracting a blurred copy
(unsharp masking) with a radius matched to the blur steepens the edges back. The same
measurement tells the binarisation step to keep its hands off a blurred page.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.measure import Gray, central_crop, percentiles, u8

_CROP = 1000
AMOUNT = 1.5
"""How much of the difference to the blurred copy is added back (1.5 = edges about 2.5x steeper).
Stronger masks read a little better on average but now and then make Tesseract drop whole lines."""
RADIUS_PER_SIGMA = 1.5
"""Mask radius per pixel of estimated blur: the estimate reads low on thin strokes, whose blurred
edges never reach full contrast, so the mask is made a little wider than the estimate."""


def sharpness(gray: Gray) -> float:
    """Edge steepness: the strongest gradients relative to the ink-to-paper contrast.

    About 1 for crisp print (ink to paper within a pixel or two); a Gaussian blur of sigma s
    brings it down to roughly 0.8 / s. Measured at full resolution on a central crop, because
    downscaling would sharpen the very edges it measures.
    """
    crop = central_crop(gray, _CROP)
    gx = cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.asarray(cv2.magnitude(gx, gy), dtype=np.float32) / 4.0
    low, high = percentiles(crop, (2, 98))
    return _top_percentile(magnitude.ravel(), 99.5) / max(float(high - low), 1.0)


def _top_percentile(values: NDArray[np.floating], q: float) -> float:
    """`np.percentile(values, q)`, found by partitioning around just the two ranks it interpolates."""
    rank = (values.size - 1) * q / 100.0
    below = int(rank)
    above = min(below + 1, values.size - 1)
    ranked = np.partition(values, (below, above))
    return float(ranked[below] + (rank - below) * (ranked[above] - ranked[below]))


def blur_sigma(steepness: float) -> float:
    """The Gaussian blur (pixels) that would explain an edge steepness (0 for a crisp page)."""
    return max(0.0, 0.8 / max(steepness, 0.05) - 0.8)


def unsharp(gray: Gray, sigma: float) -> Outcome:
    """Add back `AMOUNT` times the detail lost by a blur of radius `RADIUS_PER_SIGMA` * `sigma`."""
    radius = float(np.clip(RADIUS_PER_SIGMA * sigma, 1.0, 8.0))
    blurred = cv2.GaussianBlur(gray, (0, 0), radius)
    out = cv2.addWeighted(gray, 1.0 + AMOUNT, blurred, -AMOUNT, 0.0)
    return Outcome(u8(out), {"radius": round(radius, 2), "amount": AMOUNT})
