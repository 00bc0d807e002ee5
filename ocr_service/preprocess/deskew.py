"""Small-angle deskew: find the text lines' slope by projection profiles, then rotate it away.

For each candidate angle the ink pixels are projected onto the axis across the lines; the angle at
which the profile is sharpest (lines and gaps cleanly separated) is the skew. Projecting pixel
coordinates with `bincount` instead of rotating the image makes each candidate cost one pass over
the ink of a downscaled copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.geometry import from_affine
from ocr_service.preprocess.measure import Gray, ink_mask, shrink, u8

MAX_ANGLE = 12.0
"""Largest skew searched, in degrees; beyond it a page is rotated, not skewed (orientation's job)."""

_MAX_SAMPLES = 40_000
_ANALYSIS_SIDE = 1200


@dataclass(frozen=True)
class InkPoints:
    """Ink pixel coordinates of a downscaled copy, centred, ready to be projected at any angle."""

    ys: NDArray[np.float64]
    xs: NDArray[np.float64]
    length: int

    def transposed(self) -> InkPoints:
        return InkPoints(self.xs, self.ys, self.length)

    def profile(self, angle: float) -> NDArray[np.float64]:
        """Ink per row when the page is viewed rotated by `angle` (counter-clockwise positive)."""
        theta = np.deg2rad(angle)
        rows = (self.ys * np.cos(theta) + self.xs * np.sin(theta)).astype(np.int64) + self.length
        return np.bincount(rows, minlength=2 * self.length + 1).astype(np.float64)

    def sharpness(self, angle: float) -> float:
        """How crisply the ink falls into rows at `angle` (sum of squared row-to-row differences)."""
        return float(np.sum(np.diff(self.profile(angle)) ** 2))


def ink_points(gray: Gray) -> InkPoints | None:
    """The page's ink as points (a random sample on busy pages), or None if there is hardly any."""
    small, _ = shrink(gray, _ANALYSIS_SIDE)
    ys, xs = np.nonzero(ink_mask(small))
    if ys.size < 200:
        return None
    if ys.size > _MAX_SAMPLES:
        # A seeded random sample (with replacement: no permutation of the whole page's ink). Not
        # every k-th pixel: a regular lattice of points projects into sharp peaks of its own at
        # the lattice's angles, which the search then takes for text lines.
        pick = np.random.default_rng(0).integers(0, ys.size, _MAX_SAMPLES)
        ys, xs = ys[pick], xs[pick]
    centre_y, centre_x = small.shape[0] / 2, small.shape[1] / 2
    length = int(np.hypot(*small.shape)) + 2
    return InkPoints(ys.astype(np.float64) - centre_y, xs.astype(np.float64) - centre_x, length)


def _search(points: InkPoints, centre: float, half_width: float, step: float) -> tuple[float, float, float]:
    """Best angle in centre +- half_width, its score and the worst score seen."""
    angles = np.arange(centre - half_width, centre + half_width + step / 2, step)
    scores = np.array([points.sharpness(float(a)) for a in angles])
    return float(angles[int(np.argmax(scores))]), float(scores.max()), float(scores.min())


def skew_of(points: InkPoints, *, fine: bool = True) -> tuple[float, float]:
    """Skew angle and confidence of text lines running along the points' x axis (see `estimate_skew`)."""
    angle, best, worst = _search(points, 0.0, MAX_ANGLE, 1.0)
    if fine:
        angle, best, _ = _search(points, angle, 1.0, 0.1)
        angle, best, _ = _search(points, angle, 0.1, 0.025)
    confidence = best / worst - 1.0 if worst > 0 else 0.0
    return angle, confidence


def estimate_skew(gray: Gray) -> tuple[float, float]:
    """The text lines' slope in degrees (counter-clockwise positive, as seen on screen) and a confidence.

    The confidence is how much sharper the best profile is than the worst one searched (0 = no
    line structure, e.g. a blank page or a photo; text pages score well above 1).
    """
    points = ink_points(gray)
    if points is None:
        return 0.0, 0.0
    return skew_of(points)


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
