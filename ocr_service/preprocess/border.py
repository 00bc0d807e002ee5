"""Border and speckle removal.

Scanner lids and photocopies leave black bands along the page edges, and dust leaves specks; both
become garbage characters. Ink blobs that touch the image edge and are much larger than a letter
(or a thin band along it) are painted white, as are blobs too small to be any glyph or punctuation.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.measure import Gray, ink_mask


def clean(gray: Gray, char_height: float | None) -> Outcome:
    """Paint edge bands and specks with the paper's colour; `char_height` sets what counts as a speck.

    Works on a black-and-white page (its ink is exact) and on a grey one (ink by Otsu).
    """
    ink = (ink_mask(gray) > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if count <= 1:
        return Outcome(gray, {"borders": 0, "specks": 0})
    height, width = gray.shape
    char = char_height or 20.0
    x, y = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    w, h = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    area = stats[1:, cv2.CC_STAT_AREA]
    touches = (x == 0) | (y == 0) | (x + w == width) | (y + h == height)
    big = (w > 3 * char) | (h > 3 * char)
    banded = (w >= 0.5 * width) | (h >= 0.5 * height)
    border = touches & (big | banded)
    speck = area < max(2.0, 0.01 * char * char)
    remove = np.concatenate(([False], border | speck))
    sample_paper = gray[::4, ::4][ink[::4, ::4] == 0]
    paper = int(np.median(sample_paper)) if sample_paper.size else 255
    out = gray.copy()
    out[remove[labels]] = paper
    return Outcome(out, {"borders": int(border.sum()), "specks": int((speck & ~border).sum())})
