"""Small-angle deskew: find the text lines' slope by projection profiles, then rotate it away.

For each candidate angle the ink pixels are projected onto the axis across the lines; the angle at
which the profile is sharpest (lines and gaps cleanly separated) is the skew. Projecting pixel
coordinates with `bincount` instead of rotating the image makes each candidate cost one pass over
the ink of a downscaled copy.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.geometry import from_affine
from ocr_service.preprocess.measure import Gray, ink_mask, shrink, u8

MAX_ANGLE = 12.0
"""Largest skew searched, in degrees; beyond it a page is rotated, not skewed (orientation's job)."""

_MAX_SAMPLES = 200_000


def _sharpness(ys: NDArray[np.float64], xs: NDArray[np.float64], angle: float, length: int) -> float:
    """How crisply the ink falls into rows when projected at `angle` (sum of squared row differences)."""
    theta = np.deg2rad(angle)
    rows = (ys * np.cos(theta) + xs * np.sin(theta)).astype(np.int64) + length
    profile = np.bincount(rows, minlength=2 * length + 1).astype(np.float64)
    return float(np.sum(np.diff(profile) ** 2))


def estimate_skew(gray: Gray) -> tuple[float, float]:
    """The text lines' slope in degrees (counter-clockwise positive, as seen on screen) and a confidence.

    The confidence is how much sharper the best profile is than the worst one searched (0 = no
    line structure, e.g. a blank page or a photo; clean text pages score well above 1).
    """
    small, _ = shrink(gray, 1200)
    mask = ink_mask(small)
    ys, xs = np.nonzero(mask)
    if ys.size < 200:
        return 0.0, 0.0
    if ys.size > _MAX_SAMPLES:
        pick = np.random.default_rng(0).choice(ys.size, _MAX_SAMPLES, replace=False)
        ys, xs = ys[pick], xs[pick]
    yf = ys.astype(np.float64) - small.shape[0] / 2
    xf = xs.astype(np.float64) - small.shape[1] / 2
    length = int(np.hypot(*small.shape)) + 2
    coarse = np.arange(-MAX_ANGLE, MAX_ANGLE + 1e-9, 0.5)
    scores = np.array([_sharpness(yf, xf, a, length) for a in coarse])
    best = float(coarse[int(np.argmax(scores))])
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.05)
    fine_scores = np.array([_sharpness(yf, xf, a, length) for a in fine])
    angle = float(fine[int(np.argmax(fine_scores))])
    worst = float(scores.min())
    confidence = float(fine_scores.max()) / worst - 1.0 if worst > 0 else 0.0
    return angle, confidence


def straighten(gray: Gray, angle: float) -> Outcome:
    """Rotate by `-angle` around the centre on a canvas grown to keep the corners, filled with paper."""
    height, width = gray.shape
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), -angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width = int(np.ceil(width * cos + height * sin))
    new_height = int(np.ceil(width * sin + height * cos))
    matrix[0, 2] += (new_width - width) / 2.0
    matrix[1, 2] += (new_height - height) / 2.0
    paper = int(np.percentile(gray[:: max(1, height // 200), :: max(1, width // 200)], 95))
    rotated = cv2.warpAffine(
        gray, matrix, (new_width, new_height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=paper
    )
    return Outcome(u8(rotated), {"angle": round(angle, 2)}, from_affine(np.asarray(matrix, dtype=np.float64)))
