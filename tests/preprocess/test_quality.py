"""`auto` fixes what is wrong with a page and leaves a clean page as good as it was.

Each test degrades the same small page one way, checks that raw Tesseract suffers (so the test
means something), and that `auto` picks the step for it and reads the page better.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from preprocess_pages import Gray, cer, render, truth

from ocr_service.options import PreprocessOptions
from ocr_service.preprocess import preprocess


def applied(report: dict[str, object]) -> list[str]:
    steps = report["steps"]
    assert isinstance(steps, list)
    return [step["name"] for step in steps if step["applied"]]


def test_clean_page_is_not_worse_with_auto(page: Gray, read: Callable[[Gray], str]) -> None:
    image, _ = preprocess(page, PreprocessOptions())
    none, _ = preprocess(page, PreprocessOptions(mode="none"))

    assert cer(read(image), truth()) <= cer(read(none), truth())


def test_salt_and_pepper_is_removed(page: Gray, read: Callable[[Gray], str]) -> None:
    rng = np.random.default_rng(7)
    noisy = page.copy()
    draw = rng.random(page.shape)
    noisy[draw < 0.04] = 0
    noisy[draw > 0.96] = 255
    raw_cer = cer(read(noisy), truth())
    assert raw_cer > 0.1

    image, report = preprocess(noisy, PreprocessOptions())

    assert "denoise" in applied(report)
    assert cer(read(image), truth()) < raw_cer / 4


def test_gaussian_grain_is_smoothed(page: Gray, read: Callable[[Gray], str]) -> None:
    rng = np.random.default_rng(11)
    noisy = np.clip(page + rng.normal(0, 60, page.shape), 0, 255).astype(np.uint8)
    raw_cer = cer(read(noisy), truth())
    assert raw_cer > 0.1

    image, report = preprocess(noisy, PreprocessOptions())

    assert "denoise" in applied(report)
    assert cer(read(image), truth()) < raw_cer / 4


def test_uneven_light_is_flattened(page: Gray, read: Callable[[Gray], str]) -> None:
    height, width = page.shape
    shadow = np.linspace(1.0, 0.2, width, dtype=np.float32)[None, :] * np.ones((height, 1), np.float32)
    dim = (page * shadow).astype(np.uint8)
    raw_cer = cer(read(dim), truth())
    assert raw_cer > 0.1

    image, report = preprocess(dim, PreprocessOptions())

    assert "illumination" in applied(report)
    assert cer(read(image), truth()) < raw_cer / 4


def test_low_contrast_is_stretched(page: Gray, read: Callable[[Gray], str]) -> None:
    faded = (120 + page.astype(np.float32) * 25 / 255).astype(np.uint8)

    image, report = preprocess(faded, PreprocessOptions())

    assert "contrast" in applied(report)
    low, high = np.percentile(image, (1, 99))
    assert high - low > 200
    assert cer(read(image), truth()) <= cer(read(faded), truth())
    assert cer(read(image), truth()) < 0.02


def test_blurred_page_is_sharpened_and_never_thresholded(page: Gray, read: Callable[[Gray], str]) -> None:
    blurred = np.asarray(cv2.GaussianBlur(page, (0, 0), 3.5), dtype=np.uint8)

    image, report = preprocess(blurred, PreprocessOptions())

    assert "sharpen" in applied(report)
    assert "binarize" not in applied(report)
    assert len(np.unique(image)) > 2
    assert cer(read(image), truth()) <= cer(read(blurred), truth())


def test_small_print_is_upscaled(read: Callable[[Gray], str]) -> None:
    small = render(size=16, margin=24)  # about 150 DPI at 8 pt

    image, report = preprocess(small, PreprocessOptions())

    assert "upscale" in applied(report)
    assert report["scale"] > 1.5  # type: ignore[operator]
    assert image.shape[0] > small.shape[0] * 1.5
    assert cer(read(image), truth()) <= cer(read(small), truth())


def test_light_text_on_dark_is_inverted(page: Gray, read: Callable[[Gray], str]) -> None:
    dark_mode = 255 - page

    image, report = preprocess(dark_mode, PreprocessOptions())

    assert applied(report) == ["invert"]
    assert np.array_equal(image, page)
    assert cer(read(image), truth()) < 0.02


def test_black_scanner_border_is_not_mistaken_for_a_dark_page(page: Gray, read: Callable[[Gray], str]) -> None:
    framed = np.asarray(cv2.copyMakeBorder(page, 40, 40, 60, 60, cv2.BORDER_CONSTANT, value=0), dtype=np.uint8)

    image, report = preprocess(framed, PreprocessOptions())

    assert "invert" not in applied(report)
    assert cer(read(image), truth()) <= cer(read(framed), truth())


def test_grain_amplified_by_the_contrast_stretch_is_smoothed(read: Callable[[Gray], str]) -> None:
    small = render(size=22, margin=30)
    rng = np.random.default_rng(13)
    faint = np.clip(150 + small.astype(np.float64) * 16 / 255 + rng.normal(0, 4, small.shape), 0, 255).astype(np.uint8)
    raw_cer = cer(read(faint), truth())
    assert raw_cer > 0.2

    image, report = preprocess(faint, PreprocessOptions())

    contrast_step = next(step for step in report["steps"] if step["name"] == "contrast")  # type: ignore[union-attr]
    assert contrast_step["applied"] is True
    assert "then" in contrast_step["params"]  # the stretched grain was smoothed
    assert cer(read(image), truth()) < raw_cer / 4


def test_huge_print_is_scaled_down(read: Callable[[Gray], str]) -> None:
    huge = render(("The quick brown fox", "jumps over the lazy dog."), size=220, margin=100)

    image, report = preprocess(huge, PreprocessOptions())

    assert "upscale" in applied(report)
    assert report["scale"] < 0.5  # type: ignore[operator]
    assert image.size < huge.size / 4
    assert cer(read(image), "The quick brown fox jumps over the lazy dog.") < 0.05
