"""Word boxes found on the preprocessed image map back onto the page the client sent."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from preprocess_pages import TEXT_LINES, Gray, render

from ocr_service.options import PreprocessOptions
from ocr_service.preprocess import map_bbox, preprocess

Words = Callable[[Gray], list[tuple[str, tuple[int, int, int, int]]]]
LONGER = (*TEXT_LINES, "Sphinx of black quartz, judge my vow;", "how vexingly quick daft zebras jump.")


def turn_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """Where box [x, y, w, h] of a `width` x `height` page lands after turning the page 90 deg clockwise."""
    x, y, w, h = box
    return (height - (y + h), x, h, w)


def near(found: list[int] | tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(found, expected, strict=True))


def test_boxes_map_back_through_rotation_and_rescaling(words: Words) -> None:
    upright = render(LONGER, size=22, margin=30)  # small print: auto also upscales it
    height, width = upright.shape
    turned = np.ascontiguousarray(cv2.rotate(upright, cv2.ROTATE_90_CLOCKWISE))
    expected = {text: turn_box(box, width, height) for text, box in words(upright) if len(text) >= 5}

    image, report = preprocess(turned, PreprocessOptions())
    transform = report["transform"]
    assert isinstance(transform, dict)
    assert transform["rotate"] == 270 and transform["scale"] > 1

    mapped = {text: map_bbox(box, transform["to_source"], transform["source_size"]) for text, box in words(image)}
    common = set(mapped) & set(expected)
    assert len(common) >= 8
    tolerance = 3
    assert all(near(mapped[text], expected[text], tolerance) for text in common), {
        text: (mapped[text], expected[text]) for text in common
    }


def test_boxes_map_back_through_deskew(words: Words) -> None:
    upright = render(LONGER, size=36, margin=60)
    height, width = upright.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 5.0, 1.0)
    crooked = np.asarray(cv2.warpAffine(upright, matrix, (width, height), borderValue=255), dtype=np.uint8)

    image, report = preprocess(crooked, PreprocessOptions())
    transform = report["transform"]
    assert isinstance(transform, dict)
    assert transform["deskew"] == pytest.approx(5.0, abs=0.3)

    # A word's centre on the straightened image must land on the same word's centre on the crooked page.
    to_upright = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))
    upright_words = words(upright)
    unique = {text: box for text, box in upright_words if [t for t, _ in upright_words].count(text) == 1}
    errors = []
    for text, box in words(image):
        if text not in unique:
            continue
        x, y, w, h = map_bbox(box, transform["to_source"], transform["source_size"])
        centre = to_upright @ np.array([x + w / 2, y + h / 2, 1.0])
        ux, uy, uw, uh = unique[text]
        errors.append(float(np.hypot(centre[0] - (ux + uw / 2), centre[1] - (uy + uh / 2))))
    assert len(errors) >= 20
    assert float(np.median(errors)) < 1.5
    assert sum(error < 4 for error in errors) >= 0.9 * len(errors)


def test_map_bbox_clips_to_the_page() -> None:
    identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert map_bbox([-5, -5, 20, 20], identity, (10, 10)) == [0, 0, 10, 10]
    halve = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]]
    assert map_bbox([10, 20, 30, 40], halve, (100, 100)) == [5, 10, 15, 20]


def test_upscaling_a_long_line_stops_at_leptonicas_side_limit() -> None:
    """An accepted 20000 px wide line enlarged 4x would be 80000 px: Tesseract could not take it."""
    from ocr_service.preprocess.rescale import MAX_OUTPUT_SIDE, resize

    out = resize(np.full((10, 20_000), 255, dtype=np.uint8), 4.0)
    assert max(out.image.shape) <= MAX_OUTPUT_SIDE
