"""Cheap measurements of a page that several steps and the policy share.

Each is a few OpenCV passes over the image (or a downscaled copy) so that asking "does this page
need step X?" costs a small fraction of recognising it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Gray = NDArray[np.uint8]

ANALYSIS_MAX_SIDE = 1600
"""Measurements that only need the page's shape run on a copy at most this many pixels wide/high."""


def u8(array: object) -> Gray:
    """View an OpenCV/numpy result as the 8-bit gray type (no copy when it already is one)."""
    return np.asarray(array, dtype=np.uint8)


def to_gray(image: NDArray[np.generic]) -> Gray:
    """Any decoded page (gray, gray+alpha, BGR, BGRA; 8 or 16 bit) as 8-bit gray.

    Transparent pixels become white, which is what a viewer shows behind a PNG with alpha.
    """
    array = np.asarray(image)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 1.0
            array = np.clip(np.nan_to_num(array) * scale, 0, 255).astype(np.uint8)
        else:
            peak = max(int(array.max(initial=0)), 1)
            shift = max(int(np.ceil(np.log2(peak + 1))) - 8, 0)
            array = (array >> shift).astype(np.uint8) if shift else array.astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return np.ascontiguousarray(array)
    if array.ndim != 3 or array.shape[2] not in (2, 3, 4):
        raise ValueError(f"expected a (H, W) or (H, W, C) image, got shape {array.shape}")
    if array.shape[2] == 2:
        gray, alpha = u8(array[:, :, 0]), array[:, :, 1]
    elif array.shape[2] == 4:
        gray, alpha = u8(cv2.cvtColor(array, cv2.COLOR_BGRA2GRAY)), array[:, :, 3]
    else:
        return u8(cv2.cvtColor(array, cv2.COLOR_BGR2GRAY))
    weight = alpha.astype(np.float32) / 255.0
    blended = gray.astype(np.float32) * weight + 255.0 * (1.0 - weight)
    return u8(np.clip(blended + 0.5, 0, 255))


def shrink(gray: Gray, max_side: int = ANALYSIS_MAX_SIDE) -> tuple[Gray, float]:
    """A copy no larger than `max_side` and the factor it was scaled by (<= 1)."""
    side = max(gray.shape)
    if side <= max_side:
        return gray, 1.0
    factor = max_side / side
    small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return u8(small), factor


def ink_mask(gray: Gray) -> Gray:
    """Dark-on-light foreground (255 = ink) by Otsu's global threshold."""
    _, mask = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return u8(mask)


def percentiles(values: NDArray[np.integer], qs: tuple[float, ...]) -> tuple[float, ...]:
    """`np.percentile(values, qs)` (linear interpolation) of non-negative integers such as 8-bit
    pixels, read off their histogram.

    The same figures, but one counting pass instead of a partial sort: on a small crop the sort
    was most of a measure's cost.
    """
    if values.dtype == np.uint8:
        counts = cv2.calcHist([np.ascontiguousarray(values)], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        counts = np.bincount(values.ravel())
    cumulative = np.cumsum(counts)
    last = int(cumulative[-1]) - 1
    found: list[float] = []
    for q in qs:
        rank = last * q / 100.0
        below = int(np.floor(rank))
        low = int(np.searchsorted(cumulative, below, side="right"))
        high = int(np.searchsorted(cumulative, min(below + 1, last), side="right"))
        found.append(low + (rank - below) * (high - low))
    return tuple(found)


def contrast_span(gray: Gray) -> tuple[float, float]:
    """Ink and paper levels: the 1st and 99th intensity percentiles (robust to a few outliers)."""
    low, high = percentiles(gray[:: max(1, gray.shape[0] // 400), :: max(1, gray.shape[1] // 400)], (1, 99))
    return low, high


def central_crop(gray: Gray, side: int) -> Gray:
    """The middle `side` x `side` pixels (or all of a smaller image), at full resolution.

    Noise and blur measures need real pixels (downscaling averages noise away and steepens
    edges); the middle of a page is where its text is.
    """
    height, width = gray.shape
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    return gray[top : top + side, left : left + side]


LETTER_CROP = 1600
"""Letters are measured on the page's central `LETTER_CROP` x `LETTER_CROP` pixels at full resolution."""


@dataclass(frozen=True)
class Letters:
    """What the page's ink blobs say about its text: letter size and how many letters there are."""

    height: float | None
    """Typical letter height in pixels (see `character_height`), None if the page shows no text."""
    count: int
    """Blobs shaped like letters: a glyph count (touching letters count once, an i or j dot may count too)."""
    whole_page: bool
    """The count covers the whole page; on a page larger than the crop it covers only its middle."""


def letters(gray: Gray) -> Letters:
    """Letter height and count from one labelling of the ink (see `character_height` for the method)."""
    whole_page = max(gray.shape) <= LETTER_CROP
    gray = central_crop(gray, LETTER_CROP)
    mask = ink_mask(gray)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return Letters(None, 0, whole_page)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    widths = stats[1:, cv2.CC_STAT_WIDTH]
    areas = stats[1:, cv2.CC_STAT_AREA]
    height_limit = max(8, gray.shape[0] // 3)
    plausible = (
        (heights >= 4)
        & (heights <= height_limit)
        & (widths <= max(8, gray.shape[1] // 4))
        & (widths <= heights * 4)
        & (areas >= 6)
        & (areas >= 0.08 * heights * widths)
    )
    found = int(plausible.sum())
    if found < 8:
        return Letters(None, found, whole_page)
    # Each blob weighs its ink, capped so that one big blob (a photo, a logo) cannot outweigh the text.
    weights = areas[plausible].astype(np.float64)
    np.minimum(weights, np.percentile(weights, 90), out=weights)
    ink_by_height = np.bincount(heights[plausible], weights=weights)
    smoothed = np.convolve(ink_by_height, [1.0, 2.0, 1.0], mode="same")
    return Letters(float(np.argmax(smoothed)), found, whole_page)


def character_height(gray: Gray) -> float | None:
    """Typical height in pixels of the page's letters, or None if the page shows no text.

    The height at which blob heights, weighted by the blobs' ink, peak: most letters of Latin
    text are x-height high and carry most of the ink, so the peak sits at the x-height, while
    noise specks spread thinly over many heights (a plain median would be dragged down by them on
    a grainy page). Blobs too big or too wide to be letters (rules, frames) are ignored, and no
    blob weighs more than the 90th percentile of ink, so a picture cannot pass for the text.
    Large pages are measured on their central 1600 x 1600 pixels at full resolution: enough
    letters, and small print stays measurable (shrinking the page would not keep it so).
    """
    return letters(gray).height
