"""Affine bookkeeping, so word boxes found on the preprocessed image map back to the page.

Geometric steps (rotation by quarter turns, deskew, rescaling) each return the 3x3 matrix that
takes a point of their input to their output. The pipeline composes them; the report carries the
inverse (output -> original page) so the engine can place every word box on the page the client
sent, whatever preprocessing did to it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float64]


def identity() -> Matrix:
    """The transform of a step that moved no pixel."""
    return np.eye(3, dtype=np.float64)


def from_affine(m2x3: NDArray[np.float64]) -> Matrix:
    """Lift an OpenCV 2x3 affine matrix to 3x3 so transforms compose by multiplication."""
    out = identity()
    out[:2, :] = m2x3
    return out


def scaling(factor: float) -> Matrix:
    """Output = input * factor (OpenCV resize maps pixel centres this way up to half a pixel)."""
    return np.diag([factor, factor, 1.0]).astype(np.float64)


def map_bbox(
    bbox: tuple[int, int, int, int] | list[int], to_source: list[list[float]], size: tuple[int, int] | list[int]
) -> list[int]:
    """Map `[x, y, w, h]` on the preprocessed image to the original page, clipped to `size` (w, h).

    `to_source` is `report["transform"]["to_source"]`. Rotated boxes are returned as the upright
    rectangle that encloses the mapped corners, which is what hOCR/ALTO/JSON boxes can express.
    """
    x, y, w, h = bbox
    corners = np.array([[x, y, 1.0], [x + w, y, 1.0], [x, y + h, 1.0], [x + w, y + h, 1.0]]).T
    mapped = np.asarray(to_source, dtype=np.float64) @ corners
    width, height = size
    x0 = int(np.clip(np.floor(mapped[0].min()), 0, width))
    y0 = int(np.clip(np.floor(mapped[1].min()), 0, height))
    x1 = int(np.clip(np.ceil(mapped[0].max()), 0, width))
    y1 = int(np.clip(np.ceil(mapped[1].max()), 0, height))
    return [x0, y0, x1 - x0, y1 - y0]
