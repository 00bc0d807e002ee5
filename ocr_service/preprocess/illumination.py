"""Uneven lighting: estimate the paper's brightness everywhere and divide it out.

A phone photo or a curled page is brighter in one place than another, so a single threshold
(Tesseract's own Otsu) eats text in the shadow. The background is estimated on a small copy by a
grey-level closing larger than the letters (which removes the ink), smoothed, scaled back up, and
each pixel is divided by it: the paper becomes uniformly white and the ink keeps its contrast.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.measure import Gray, character_height, percentiles, shrink, u8

_BACKGROUND_SIDE = 400


def _closed_paper(small: Gray, char_height: float | None) -> tuple[Gray, int]:
    """The small copy with its ink closed away (the paper level), and the closing's size in pixels."""
    # The closing must bridge whole letters: 2.5 character heights, in small-copy pixels.
    size = int(np.clip((char_height or 30.0) * 2.5, 5, max(5, min(small.shape) // 3)))
    size |= 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return u8(cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)), size


def background(gray: Gray, char_height: float | None = None) -> Gray:
    """The paper's brightness at every pixel, at the page's full size.

    `char_height` is the letter height of `gray` when the caller has measured it already (the
    pipeline measures it once per image); otherwise it is measured here.
    """
    small, factor = shrink(gray, _BACKGROUND_SIDE)
    char = character_height(gray) if char_height is None else char_height
    closed, size = _closed_paper(small, None if char is None else char * factor)
    smooth = cv2.GaussianBlur(closed, (0, 0), sigmaX=size / 2)
    return u8(cv2.resize(smooth, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR))


def unevenness(gray: Gray, char_height: float | None = None) -> float:
    """How much the paper's brightness varies over the page: (p95 - p25) / p95 of the background.

    0 for an evenly lit page. The 25th percentile rather than the minimum, so that a photo or a
    black band covering part of the page does not read as shading: lighting changes across most
    of the page, pictures cover a minority of it.

    Only the spread of the background matters here, not its value at every pixel, so the closed
    paper level is smoothed on a copy shrunk by a quarter of the closing's size (the closing has
    already removed all detail finer than that): the smoothing, which was most of the measure's
    cost, then runs on a sixteenth of the pixels or fewer.
    """
    small, factor = shrink(gray, _BACKGROUND_SIDE)
    # The closing is sized by the letters as the shrunk copy shows them (on a big page they are too
    # small to measure there and the closing spans the default 30 px: a shadow, not ink). A caller's
    # `char_height` is the same figure only when nothing was shrunk.
    char = char_height if char_height is not None and factor == 1.0 else character_height(small)
    closed, size = _closed_paper(small, char)
    step = max(1, size // 4)
    if step > 1:
        closed = u8(cv2.resize(closed, None, fx=1 / step, fy=1 / step, interpolation=cv2.INTER_AREA))
    smooth = u8(cv2.GaussianBlur(closed, (0, 0), sigmaX=size / 2 / step))
    low, high = percentiles(smooth, (25, 95))
    return float((high - low) / max(high, 1.0))


def flatten(gray: Gray, char_height: float | None = None) -> Outcome:
    """Divide the page by its background so the paper is uniformly white."""
    bg = background(gray, char_height)
    np.maximum(bg, 1, out=bg)
    # 8-bit in, 8-bit out (saturating): no full-size float temporaries on large pages.
    return Outcome(u8(cv2.divide(gray, bg, scale=255.0)), {"method": "background-division"})
