"""The report's shape, and inputs that must not crash: tiny, blank, black, noise, odd pixel formats."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from preprocess_pages import Gray

from ocr_service.options import PreprocessOptions
from ocr_service.preprocess import STEP_NAMES, preprocess


def test_report_has_the_documented_shape_and_is_json(page: Gray) -> None:
    _, report = preprocess(page, PreprocessOptions())

    assert set(report) == {"mode", "steps", "orientation", "scale", "transform", "ms"}
    assert report["mode"] == "auto"
    steps = report["steps"]
    assert isinstance(steps, list)
    assert [step["name"] for step in steps] == list(STEP_NAMES)
    for step in steps:
        assert {"name", "applied", "decision", "params", "ms"} <= set(step)
        assert isinstance(step["applied"], bool)
        assert step["ms"] >= 0
    transform = report["transform"]
    assert isinstance(transform, dict)
    assert set(transform) == {"rotate", "deskew", "scale", "size", "source_size", "to_source"}
    assert transform["source_size"] == [page.shape[1], page.shape[0]]
    assert report["ms"] >= sum(step["ms"] for step in steps) * 0.99  # type: ignore[operator]
    assert json.loads(json.dumps(report)) == report


def test_colour_input_is_read_as_gray(page: Gray) -> None:
    bgr = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    bgra = cv2.cvtColor(page, cv2.COLOR_GRAY2BGRA)

    for colour in (bgr, bgra, page[:, :, None]):
        image, _ = preprocess(colour, PreprocessOptions(mode="none"))
        assert image.dtype == np.uint8
        assert np.array_equal(image, page)


def test_transparent_pixels_become_white(page: Gray) -> None:
    bgra = cv2.cvtColor(page, cv2.COLOR_GRAY2BGRA)
    bgra[:, :, 3] = 0

    image, _ = preprocess(bgra, PreprocessOptions(mode="none"))

    assert int(image.min()) == 255


def test_sixteen_bit_and_float_pages_are_scaled_to_eight_bits(page: Gray) -> None:
    wide = page.astype(np.uint16) * 257
    unit = page.astype(np.float32) / 255.0

    for other in (wide, unit):
        image, _ = preprocess(other, PreprocessOptions(mode="none"))
        assert np.abs(image.astype(int) - page.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((0, 0), np.uint8),
        np.zeros((1, 1), np.uint8),
        np.full((5, 7), 255, np.uint8),
        np.full((400, 300), 255, np.uint8),
        np.zeros((400, 300), np.uint8),
        np.random.default_rng(3).integers(0, 256, (300, 400), dtype=np.uint8),
        np.tile(np.arange(256, dtype=np.uint8), (64, 2)),
    ],
    ids=["empty", "one-pixel", "tiny-white", "blank", "black", "noise", "gradient"],
)
@pytest.mark.parametrize("forced", [False, True], ids=["auto", "all-forced"])
def test_degenerate_pages_do_not_crash(image: Gray, forced: bool) -> None:
    steps = dict.fromkeys(STEP_NAMES, True) if forced else {}

    out, report = preprocess(image, PreprocessOptions(steps=steps))

    assert out.dtype == np.uint8
    assert out.ndim == 2
    assert json.dumps(report)
    if image.size and not forced:
        assert out.shape[0] >= 1 and out.shape[1] >= 1


def test_malformed_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((4, 4, 4, 4), np.uint8), PreprocessOptions())
