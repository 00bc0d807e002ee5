"""Skewed pages are measured and straightened; straight pages are not resampled for nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from preprocess_pages import TEXT_LINES, Gray, cer, render, skew, truth

from ocr_service.options import PreprocessOptions
from ocr_service.preprocess import preprocess
from ocr_service.preprocess.deskew import estimate_skew


@pytest.mark.parametrize("degrees", [4.0, -4.0, 7.5, -1.5])
def test_skew_is_measured_with_its_sign(page: Gray, degrees: float) -> None:
    angle, confidence = estimate_skew(skew(page, degrees))

    assert angle == pytest.approx(degrees, abs=0.3)
    assert confidence > 1.0


@pytest.mark.parametrize("degrees", [4.0, -6.0])
def test_skewed_page_is_straightened_and_reads_correctly(
    page: Gray, read: Callable[[Gray], str], degrees: float
) -> None:
    crooked = skew(page, degrees)

    image, report = preprocess(crooked, PreprocessOptions())

    step = next(step for step in report["steps"] if step["name"] == "deskew")  # type: ignore[union-attr]
    assert step["applied"] is True
    assert step["params"]["skew"] == pytest.approx(degrees, abs=0.3)
    assert report["transform"]["deskew"] == pytest.approx(degrees, abs=0.3)  # type: ignore[index]
    residual, _ = estimate_skew(image)
    assert abs(residual) < 0.3
    assert cer(read(image), truth()) <= cer(read(crooked), truth())
    assert cer(read(image), truth()) < 0.02


@pytest.mark.parametrize("degrees", [0.0, 3.0])
def test_skew_of_a_busy_page_is_measured_on_a_sample_without_artefacts(degrees: float) -> None:
    busy = render(TEXT_LINES * 6)  # far more ink pixels than the search samples
    assert int((busy < 128).sum()) > 100_000

    angle, _ = estimate_skew(skew(busy, degrees) if degrees else busy)

    assert angle == pytest.approx(degrees, abs=0.3)


def test_straight_page_is_not_rotated(page: Gray) -> None:
    image, report = preprocess(page, PreprocessOptions())

    step = next(step for step in report["steps"] if step["name"] == "deskew")  # type: ignore[union-attr]
    assert step["applied"] is False
    assert image.shape == page.shape


def test_blank_page_has_no_skew() -> None:
    assert estimate_skew(np.full((300, 400), 255, np.uint8)) == (0.0, 0.0)


@pytest.mark.parametrize("name", ["8071_093.3B.tif", "8087_054.3B.tif"])
def test_real_busy_scans_are_measured_nearly_straight(corpus_dir: Path, name: str) -> None:
    """Full 300-DPI pages with columns and rules: a sampling artefact once read one as 11 deg."""
    scan = np.asarray(cv2.imread(str(corpus_dir / name), cv2.IMREAD_GRAYSCALE), dtype=np.uint8)

    angle, _ = estimate_skew(scan)

    assert abs(angle) < 1.0


@pytest.mark.parametrize("degrees", [0.45, -0.45, 0.8])
def test_slight_skew_is_not_taken_for_a_straight_page(page: Gray, degrees: float) -> None:
    """Straight pages skip the fine search; a skew just past the threshold must not be cut short with them."""
    crooked = skew(page, degrees)

    angle, _ = estimate_skew(crooked)
    _, report = preprocess(crooked, PreprocessOptions())

    assert angle == pytest.approx(degrees, abs=0.15)
    step = next(step for step in report["steps"] if step["name"] == "deskew")  # type: ignore[union-attr]
    assert step["applied"] is True
