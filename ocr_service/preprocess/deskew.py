"""Small-angle deskew: find the text lines' slope by projection profiles, then rotate it away.

For each candidate angle the ink pixels are projected onto the axis across the lines; the angle at
which the profile is sharpest (lines and gaps cleanly separated) is the skew. Projecting pixel
coordinates with `bincount` instead of rotating the image makes each candidate cost one pass over
the ink of a downscaled copy, and all the candidates of one search stage share a single
`bincount` (one numpy pass instead of one per angle: on a small crop the per-call overhead, not the
arithmetic, was the cost).

Rows are whole pixels centred on the pixels of an unrotated page (rounded, not truncated: truncating
toward zero once gave the centre row two rows' worth of ink at every angle but 0, and on a one-line
crop, whose line sits at the centre, that spike outweighed the line's edges and read a third of
straight receipt lines as skewed by about -1 deg).
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
        rows = (self.ys * np.cos(theta) + self.xs * np.sin(theta) + (self.length + 0.5)).astype(np.int64)
        return np.bincount(rows, minlength=2 * self.length + 1).astype(np.float64)

    def sharpnesses(self, angles: NDArray[np.float64]) -> NDArray[np.float64]:
        """How crisply the ink falls into rows at each of `angles` (sum of squared row-to-row
        differences of `profile`), from one `bincount` over all of them.

        Coordinates are projected in float32 and binned in int32: rows are whole pixels, so the
        single precision changes no figure that matters and halves the memory the pass walks.
        """
        ys, xs = self.ys.astype(np.float32), self.xs.astype(np.float32)
        theta = np.deg2rad(angles).astype(np.float32)[:, None]
        rows = (ys * np.cos(theta) + xs * np.sin(theta) + np.float32(self.length + 0.5)).astype(np.int32)
        width = 2 * self.length + 1
        rows += (np.arange(angles.size, dtype=np.int32) * width)[:, None]
        profiles = np.bincount(rows.ravel(), minlength=width * angles.size).reshape(angles.size, width)
        steps = np.diff(profiles, axis=1)
        return np.asarray(np.einsum("ij,ij->i", steps, steps), dtype=np.float64)


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
    # Centred on a whole pixel, so that at 0 deg each pixel sits in the middle of its row, not on an edge.
    centre_y, centre_x = small.shape[0] // 2, small.shape[1] // 2
    length = int(np.hypot(*small.shape)) + 2
    return InkPoints(ys.astype(np.float64) - centre_y, xs.astype(np.float64) - centre_x, length)


def _search(points: InkPoints, centre: float, half_width: float, step: float) -> tuple[float, float, float]:
    """Best angle in centre +- half_width, its score and the worst score seen.

    Of angles that score exactly the same the one nearest `centre` wins (for the first search, the
    page as it is): a short word can span too few pixels for a small rotation to move any ink to
    another row, and taking the first of the tied angles read every such word as skewed by the
    most negative of them.
    """
    angles = np.arange(centre - half_width, centre + half_width + step / 2, step)
    scores = points.sharpnesses(angles)
    tied = np.flatnonzero(scores == scores.max())
    best = int(tied[np.argmin(np.abs(angles[tied] - centre))])
    return float(angles[best]), float(scores[best]), float(scores.min())


STRAIGHT_PROBE = 0.25
"""Angle either side of 0 deg at which a straight page's profile is probed before any fine search."""
STRAIGHT_CONFIDENCE = 4.0
"""Only pages whose coarse profiles are this confident (crisp, well separated lines: clean print
scores 10-25) may skip the fine search. Busy scans with columns and pictures score near 1 and
their sharpness is not a single peak around the skew, so they are always searched in full."""


def _sharpest_at_zero(points: InkPoints, at_zero: float) -> bool:
    """Whether the profile at 0 deg is at least as sharp as at +-`STRAIGHT_PROBE` deg.

    A profile's sharpness peaks at the skew and falls off both ways, so then the skew lies within
    about half the probe of zero: well below anything worth straightening (`policy.SKEW_DEGREES`),
    and the fine stages (30 more profiles) would only refine an angle nobody acts on. Most pages
    are scanned straight, so this is the common case.
    """
    either_side = points.sharpnesses(np.array([-STRAIGHT_PROBE, STRAIGHT_PROBE]))
    return bool(at_zero >= either_side.max())


@dataclass(frozen=True)
class Skew:
    """What the projection profiles say about the slope of the text lines."""

    angle: float
    """Skew in degrees, counter-clockwise positive as seen on screen."""
    confidence: float
    """How much sharper the best profile is than the worst one searched (0 = no line structure,
    e.g. a blank page or a photo; text pages score well above 1)."""
    rise: float
    """Rows (of the analysis copy) by which lines tilted at `angle` rise over the text's width.

    The profile can only tell a tilt from straight when it moves ink into other rows: under a
    pixel or two across the whole text, anti-aliased glyph edges and which rows the pixels happen
    to fall in decide the "best" angle, not the page. Many lines or a long one rise several
    pixels at a few tenths of a degree; a short word of small print hardly rises at 1 deg.
    Measured by the fine search only (0 after a coarse one, whose angle nobody straightens by)."""


def _width(points: InkPoints) -> float:
    """How far the ink extends along the lines (0.5th to 99.5th percentile: a stray speck does not count)."""
    left, right = np.percentile(points.xs, [0.5, 99.5])
    return float(right - left)


def skew_of(points: InkPoints, *, fine: bool = True) -> Skew:
    """Skew of text lines running along the points' x axis (see `Skew`)."""
    angle, best, worst = _search(points, 0.0, MAX_ANGLE, 1.0)
    if fine and angle == 0.0 and best > (1.0 + STRAIGHT_CONFIDENCE) * worst and _sharpest_at_zero(points, best):
        return Skew(0.0, best / worst - 1.0, 0.0)
    if fine:
        angle, best, _ = _search(points, angle, 1.0, 0.1)
        angle, best, _ = _search(points, angle, 0.1, 0.025)
    confidence = best / worst - 1.0 if worst > 0 else 0.0
    rise = _width(points) * abs(float(np.tan(np.deg2rad(angle)))) if fine and angle else 0.0
    return Skew(angle, confidence, rise)


def estimate_skew(gray: Gray) -> tuple[float, float]:
    """The text lines' slope in degrees (counter-clockwise positive, as seen on screen) and a confidence.

    The confidence is how much sharper the best profile is than the worst one searched (0 = no
    line structure, e.g. a blank page or a photo; text pages score well above 1).
    """
    points = ink_points(gray)
    if points is None:
        return 0.0, 0.0
    skew = skew_of(points)
    return skew.angle, skew.confidence


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
