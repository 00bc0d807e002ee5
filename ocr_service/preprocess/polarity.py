"""Light-on-dark pages (screenshots in dark mode, negatives, white-on-black signs) turned dark-on-light.

Every later step assumes dark ink on light paper: the background estimate, the ink masks, the
thresholds. The paper is whatever most of the page is, so a page whose larger Otsu class and
whose outer frame are both dark is inverted; a dark photo or a black scanner border covers only
part of a page and does not count.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.measure import Gray, shrink, u8


def dark_paper(gray: Gray) -> tuple[float, float]:
    """Fractions of the page and of its outer frame (a tenth of each side) on the dark side of Otsu."""
    small, _ = shrink(gray, 800)
    _, dark = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    height, width = dark.shape
    band_y, band_x = max(1, height // 10), max(1, width // 10)
    frame = np.concatenate(
        (dark[:band_y].ravel(), dark[-band_y:].ravel(), dark[:, :band_x].ravel(), dark[:, -band_x:].ravel())
    )
    return float(dark.mean()), float(frame.mean())


def invert(gray: Gray) -> Outcome:
    return Outcome(u8(cv2.bitwise_not(gray)), {"inverted": True})
