"""Noise removal: impulse (salt-and-pepper) noise and Gaussian sensor grain, each measured first.

Impulse noise is removed by a switching median: only pixels that stand alone against all their
neighbours are replaced by the local median, so thin strokes (which always have neighbours of
their own colour) survive, unlike with a plain median filter. Gaussian grain is smoothed by a
3x3 median, and by non-local means (strong but costly) only when grain survives the median.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.measure import Gray, central_crop, ink_mask, percentiles, u8

IMPULSE_DELTA = 96
"""A pixel this much darker (or brighter) than its 5x5 median is a candidate impulse."""

SOFTEN_SIGMA = 1.2
"""Blur radius for amplified grain: the best of 0.8-1.2 on faint 8-10 pt print with grain."""

_MEASURE_SIDE = 1000
"""Noise is measured on the page's central 1000 x 1000 pixels: noise covers the page evenly."""


def _impulses(gray: Gray) -> tuple[NDArray[np.bool_], Gray]:
    """Mask of isolated outliers (pepper on paper, salt in ink) and the median used to find them.

    A candidate differs from its 3x3 median by more than `IMPULSE_DELTA`; it is isolated when at
    most one of its 8 neighbours is on the same side of the page's ink/paper threshold. Stroke
    pixels always have two or more such neighbours, so text is left alone.
    """
    median = u8(cv2.medianBlur(gray, 3))
    _, dark = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    # 3x3 sums of the dark mask, minus the centre: dark neighbours of each pixel (0..8).
    dark_neighbours = cv2.boxFilter(dark, cv2.CV_16S, (3, 3), normalize=False, borderType=cv2.BORDER_REPLICATE) - dark
    signed = cv2.subtract(gray, median, dtype=cv2.CV_16S)
    is_dark = dark.astype(bool)
    pepper = is_dark & (signed < -IMPULSE_DELTA) & (dark_neighbours <= 1)
    salt = ~is_dark & (signed > IMPULSE_DELTA) & (dark_neighbours >= 7)
    return pepper | salt, median


def impulse_density(gray: Gray) -> float:
    """Fraction of pixels that are isolated salt or pepper dots (clean scans: well under 0.1%)."""
    outliers, _ = _impulses(central_crop(gray, _MEASURE_SIDE))
    return float(outliers.mean())


def grain_sigma(gray: Gray) -> float:
    """Standard deviation of the grain on the paper, from pixels far from any ink.

    The residual against a 5x5 box mean is measured only where the page is blank, so the text's
    own edges do not count as noise; the MAD estimator ignores the odd dust speck.
    """
    small = central_crop(gray, _MEASURE_SIDE)
    mask = ink_mask(u8(cv2.GaussianBlur(small, (5, 5), 0)))
    blank = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
    if int(blank.sum()) < 500:
        return 0.0
    # Both terms are 8-bit, so the residual is a whole number in -255..255: its medians are read off
    # a histogram (`percentiles`), twice as doubled values so a half-integer median stays whole.
    residual = cv2.subtract(small, cv2.blur(small, (5, 5)), dtype=cv2.CV_16S)
    doubled = residual[blank].astype(np.int32) * 2 + 510
    (centre,) = percentiles(doubled, (50,))
    (doubled_mad,) = percentiles(np.abs(doubled * 2 - round(2 * centre)), (50,))
    mad = doubled_mad / 4
    # 1.4826 turns a MAD into sigma; the box mean shares 1/25 of the pixel, hence the small correction.
    return float(1.4826 * mad / (1 - 1 / 25) ** 0.5)


def remove_impulses(gray: Gray, *, dense: bool) -> Outcome:
    """Replace isolated outliers (single dots and pairs) by their local median.

    One pass: a second would find new "isolated" pixels at the ends of hairlines and eat them.
    Dense noise also leaves dots touching the strokes and holes inside them, which no isolation
    test can tell from ink; for it (`dense`) a 3x3 median over the whole page follows. It thins
    one-pixel strokes, but on a page that noisy Tesseract could not read those anyway.
    """
    outliers, median = _impulses(gray)
    out = u8(np.where(outliers, median, gray))
    if dense:
        out = u8(cv2.medianBlur(out, 3))
    filter_name = "switching-median+median-3" if dense else "switching-median"
    return Outcome(out, {"filter": filter_name, "replaced": int(outliers.sum())})


def smooth_grain(gray: Gray) -> Outcome:
    """A 3x3 median: edge-preserving, about a millisecond per megapixel, and usually enough.

    Tesseract reads text through moderate grain once the pixel-level noise is gone; the grain left
    afterwards decides on non-local means (see `policy.non_local_means`).
    """
    return Outcome(u8(cv2.medianBlur(gray, 3)), {"filter": "median-3"})


def soften_grain(gray: Gray) -> Outcome:
    """A light Gaussian blur (sigma 1.2) for grain that a stretch or a flattening has amplified.

    Such grain is Gaussian, not impulsive, and the text it sits on is faint and often small, where
    a median eats thin strokes; the blur averages the grain away and keeps strokes whole.
    """
    return Outcome(u8(cv2.GaussianBlur(gray, (0, 0), SOFTEN_SIGMA)), {"filter": "gaussian", "sigma": SOFTEN_SIGMA})


def non_local_means(gray: Gray, sigma: float) -> Outcome:
    """Non-local means with strength tied to the grain; costs about as much as recognising the page."""
    strength = float(np.clip(sigma, 3.0, 30.0))
    out = u8(cv2.fastNlMeansDenoising(gray, None, h=strength, templateWindowSize=5, searchWindowSize=13))
    return Outcome(out, {"filter": "non-local-means", "h": round(strength, 1)})
