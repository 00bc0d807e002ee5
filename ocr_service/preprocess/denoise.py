"""Noise removal: impulse (salt-and-pepper) noise and Gaussian sensor grain, each measured first.

Impulse noise is removed by a switching median: only pixels that stand alone against all their
neighbours are replaced by the local median, so thin strokes (which always have neighbours of
their own colour) survive, unlike with a plain median filter. Gaussian grain is smoothed by
non-local means on a bounded search window: strong but costly, so the policy reserves it for
pages whose measured grain is high enough to hurt recognition.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.measure import Gray, ink_mask, shrink, u8

IMPULSE_DELTA = 96
"""A pixel this much darker (or brighter) than its 5x5 median is a candidate impulse."""

_RING = np.ones((3, 3), np.float32)
_RING[1, 1] = 0


def _impulses(gray: Gray) -> tuple[NDArray[np.bool_], Gray]:
    """Mask of isolated outliers (pepper on paper, salt in ink) and the median used to find them.

    A candidate differs from its 5x5 median by more than `IMPULSE_DELTA`; it is isolated when at
    most one of its 8 neighbours is on the same side of the page's ink/paper threshold. Stroke
    pixels always have two or more such neighbours, so text is left alone.
    """
    median = u8(cv2.medianBlur(gray, 5))
    threshold, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    signed = gray.astype(np.int16) - median.astype(np.int16)
    dark = (gray <= threshold).astype(np.float32)
    dark_neighbours = cv2.filter2D(dark, -1, _RING, borderType=cv2.BORDER_REPLICATE)
    bright_neighbours = 8.0 - dark_neighbours
    pepper = (dark > 0) & (signed < -IMPULSE_DELTA) & (dark_neighbours <= 1.5)
    salt = (dark == 0) & (signed > IMPULSE_DELTA) & (bright_neighbours <= 1.5)
    return pepper | salt, median


def impulse_density(gray: Gray) -> float:
    """Fraction of pixels that are isolated salt or pepper dots (clean scans: well under 0.1%)."""
    small, _ = shrink(gray, 2000)
    outliers, _ = _impulses(small)
    return float(outliers.mean())


def grain_sigma(gray: Gray) -> float:
    """Standard deviation of the grain on the paper, from pixels far from any ink.

    The residual against a 5x5 box mean is measured only where the page is blank, so the text's
    own edges do not count as noise; the MAD estimator ignores the odd dust speck.
    """
    small, _ = shrink(gray, 1600)
    mask = ink_mask(u8(cv2.GaussianBlur(small, (5, 5), 0)))
    blank = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
    if int(blank.sum()) < 500:
        return 0.0
    residual = small.astype(np.float32) - cv2.blur(small, (5, 5)).astype(np.float32)
    values = residual[blank]
    mad = float(np.median(np.abs(values - np.median(values))))
    # 1.4826 turns a MAD into sigma; the box mean shares 1/25 of the pixel, hence the small correction.
    return float(1.4826 * mad / (1 - 1 / 25) ** 0.5)


def remove_impulses(gray: Gray) -> Outcome:
    """Replace isolated outliers by their local median (twice: the first pass uncovers clustered ones)."""
    out = gray
    replaced = 0
    for _ in range(2):
        outliers, median = _impulses(out)
        count = int(outliers.sum())
        if count == 0:
            break
        out = u8(np.where(outliers, median, out))
        replaced += count
    return Outcome(out, {"filter": "switching-median", "replaced": replaced})


def smooth_grain(gray: Gray, sigma: float) -> Outcome:
    """Non-local means with strength tied to the measured grain (bounded windows keep it affordable)."""
    strength = float(np.clip(sigma * 0.9, 3.0, 30.0))
    out = cv2.fastNlMeansDenoising(gray, None, h=strength, templateWindowSize=5, searchWindowSize=13)
    return Outcome(u8(out), {"filter": "non-local-means", "h": round(strength, 1)})
