"""Pages turned by a quarter or a half come back upright and read correctly; upright pages skip OSD."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from preprocess_pages import TEXT_LINES, Gray, cer, render, truth

from ocr_service.options import PreprocessOptions
from ocr_service.preprocess import orientation, policy, preprocess


@pytest.fixture(scope="module")
def longer_page() -> Gray:
    """Five lines: OSD needs a few dozen letters to be sure of a page's orientation."""
    return render((*TEXT_LINES, "Sphinx of black quartz, judge my vow;", "how vexingly quick daft zebras jump."))


def _step(report: dict[str, object], name: str) -> dict[str, object]:
    steps = report["steps"]
    assert isinstance(steps, list)
    return next(step for step in steps if step["name"] == name)


@pytest.mark.parametrize(
    ("rotate_code", "content_angle", "correction"),
    [
        (cv2.ROTATE_90_CLOCKWISE, 90, 270),
        (cv2.ROTATE_90_COUNTERCLOCKWISE, 270, 90),
        (cv2.ROTATE_180, 180, 180),
    ],
    ids=["90-clockwise", "90-counter-clockwise", "180"],
)
def test_turned_page_comes_back_upright_and_reads_correctly(
    longer_page: Gray, read: Callable[[Gray], str], rotate_code: int, content_angle: int, correction: int
) -> None:
    expected = truth((*TEXT_LINES, "Sphinx of black quartz, judge my vow;", "how vexingly quick daft zebras jump."))
    turned = np.ascontiguousarray(cv2.rotate(longer_page, rotate_code))
    if rotate_code == cv2.ROTATE_180:
        assert cer(read(turned), expected) > 0.3  # what raw Tesseract makes of it: the test means something

    image, report = preprocess(turned, PreprocessOptions())

    step = _step(report, "orientation")
    assert step["applied"] is True
    assert report["orientation"] is not None
    assert report["orientation"]["angle"] == content_angle  # type: ignore[index]
    assert report["orientation"]["script"] == "Latin"  # type: ignore[index]
    transform = report["transform"]
    assert isinstance(transform, dict)
    assert transform["rotate"] == correction
    height, width = image.shape
    assert width > height  # landscape text block again
    assert cer(read(image), expected) < 0.03


def test_upright_page_is_left_alone_without_asking_osd(page: Gray) -> None:
    image, report = preprocess(page, PreprocessOptions())

    step = _step(report, "orientation")
    assert step["applied"] is False
    assert str(step["reason"]).startswith("upright")
    assert report["orientation"] is None  # OSD never ran
    assert report["transform"]["rotate"] == 0  # type: ignore[index]
    assert np.array_equal(image, page)


def test_sparse_page_is_not_turned_on_a_guess() -> None:
    """Two letters give OSD nothing to go on: whatever it answers, the page stays as it is."""
    tiny = render(("Hi",), size=40, margin=30)
    turned = np.ascontiguousarray(cv2.rotate(tiny, cv2.ROTATE_180))

    image, report = preprocess(turned, PreprocessOptions(steps={"upscale": False}))

    assert _step(report, "orientation")["applied"] is False
    assert image.shape == turned.shape


def test_forcing_orientation_off_keeps_a_turned_page_turned(longer_page: Gray) -> None:
    turned = np.ascontiguousarray(cv2.rotate(longer_page, cv2.ROTATE_180))

    image, report = preprocess(turned, PreprocessOptions(steps={"orientation": False}))

    step = _step(report, "orientation")
    assert step["applied"] is False
    assert step["decision"] == "off"
    assert report["transform"]["rotate"] == 0  # type: ignore[index]
    assert image.shape == turned.shape


@pytest.mark.parametrize("name", ["phototest-rotated-L.png", "phototest-rotated-R.png", "phototest-rotated-180.png"])
def test_real_scan_turned_reads_like_the_upright_scan(corpus_dir: Path, read: Callable[[Gray], str], name: str) -> None:
    decoded = cv2.imread(str(corpus_dir / name), cv2.IMREAD_UNCHANGED)
    expected = (corpus_dir / "phototest.txt").read_text(encoding="utf-8")

    image, report = preprocess(decoded, PreprocessOptions())

    assert _step(report, "orientation")["applied"] is True
    assert cer(read(image), expected) < 0.02


def test_cli_fallback_reads_the_same_orientation(longer_page: Gray) -> None:
    """Without tesserocr the `tesseract --psm 0` CLI answers through pytesseract."""
    turned = np.ascontiguousarray(cv2.rotate(longer_page, cv2.ROTATE_90_COUNTERCLOCKWISE))

    found = orientation._detect_cli(turned)

    assert found is not None
    assert found.angle == 270
    assert found.correction == 90
    assert found.confidence > policy.ORIENTATION_CONFIDENCE


def test_threads_each_get_their_own_warm_osd_engine(longer_page: Gray) -> None:
    """The engine calls preprocess from several worker threads at once."""
    pages = [
        np.ascontiguousarray(cv2.rotate(longer_page, code))
        for code in (cv2.ROTATE_180, cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE) * 2
    ]

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda page: preprocess(page, PreprocessOptions()), pages))

    for image, report in results:
        assert report["orientation"] is not None
        assert image.shape == longer_page.shape
        assert np.abs(image.astype(int) - longer_page.astype(int)).mean() < 1.0  # upright again, pixel for pixel


def test_one_line_without_many_ascenders_skips_osd_for_too_few_letters() -> None:
    """Descenders outnumber ascenders here, so the ascender check cannot vouch for the line; with
    fewer letters than Tesseract's OSD needs, OSD is not asked either (it cost up to 20 ms a crop)."""
    line = render(("gray puppy jogs quickly",), size=40, margin=20)

    image, report = preprocess(line, PreprocessOptions())

    step = _step(report, "orientation")
    assert step["applied"] is False
    assert step["params"]["lines"] == "horizontal"  # type: ignore[index]
    assert step["params"]["ascender_ratio"] < policy.UPRIGHT_ASCENDER_RATIO  # type: ignore[index]
    assert step["params"]["glyphs"] < policy.OSD_MIN_GLYPHS  # type: ignore[index]
    assert "too few for OSD" in str(step["reason"])
    assert report["orientation"] is None
    assert report["transform"]["rotate"] == 0  # type: ignore[index]
    assert image.shape[1] > image.shape[0]


def test_one_line_turned_a_quarter_still_asks_osd() -> None:
    """Few letters skip OSD only on horizontal lines: a vertical line is a turned page until OSD says otherwise."""
    line = render(("gray puppy jogs quickly",), size=40, margin=20)
    turned = np.ascontiguousarray(cv2.rotate(line, cv2.ROTATE_90_CLOCKWISE))

    _, report = preprocess(turned, PreprocessOptions())

    step = _step(report, "orientation")
    assert step["params"]["lines"] != "horizontal"  # type: ignore[index]
    assert "too few for OSD" not in str(step["reason"])
    assert not str(step["reason"]).startswith("upright:")
