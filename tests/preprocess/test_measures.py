"""The cheap measurements `auto` decides by read what they claim to read, on pages with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from preprocess_pages import Gray, render

from ocr_service.preprocess import denoise, illumination, polarity, rescale, sharpen
from ocr_service.preprocess.measure import character_height, letters, percentiles


@pytest.mark.parametrize("sigma", [8.0, 15.0, 25.0])
def test_grain_sigma_reads_the_noise_added_to_paper(page: Gray, sigma: float) -> None:
    grey = 30 + page.astype(np.float64) * 130 / 255  # paper at 160: the noise is not clipped at white
    noisy = np.clip(grey + np.random.default_rng(1).normal(0, sigma, page.shape), 0, 255).astype(np.uint8)

    assert denoise.grain_sigma(noisy) == pytest.approx(sigma, rel=0.25)
    assert denoise.grain_sigma(page) < 1.0


def test_impulse_density_counts_isolated_dots_not_strokes(page: Gray) -> None:
    dotted = page.copy()
    rng = np.random.default_rng(2)
    draw = rng.random(page.shape)
    dotted[draw < 0.01] = 0

    assert denoise.impulse_density(page) < 0.0005
    assert denoise.impulse_density(dotted) == pytest.approx(0.01 * (page > 128).mean(), rel=0.25)


def test_switching_median_keeps_one_pixel_strokes() -> None:
    lines = np.full((200, 200), 255, np.uint8)
    lines[50, 20:180] = 0  # a hairline
    lines[20:180, 120] = 0
    dotted = lines.copy()
    dotted[np.random.default_rng(3).random(lines.shape) < 0.01] = 0

    cleaned = denoise.remove_impulses(dotted, dense=False).image

    # Only the hairlines' end pixels (one neighbour, like a dot) may go.
    assert np.array_equal(cleaned[50, 21:179], lines[50, 21:179])
    assert np.array_equal(cleaned[21:179, 120], lines[21:179, 120])
    assert (cleaned == 0).sum() < (dotted == 0).sum() * 0.6


def test_non_local_means_takes_out_grain() -> None:
    flat = np.full((200, 200), 200, np.uint8)
    noisy = np.clip(flat + np.random.default_rng(4).normal(0, 20, flat.shape), 0, 255).astype(np.uint8)

    smoothed = denoise.non_local_means(noisy, 20.0).image

    assert float(np.std(smoothed.astype(float))) < float(np.std(noisy.astype(float))) / 3


@pytest.mark.parametrize("size", [16, 40, 80])
def test_character_height_follows_the_font_size(size: int) -> None:
    height = character_height(render(size=size, margin=size))

    assert height is not None
    assert height == pytest.approx(0.55 * size, rel=0.2)  # DejaVu's x-height is 0.55 em


def test_character_height_is_not_fooled_by_grain(page: Gray) -> None:
    noisy = np.clip(page + np.random.default_rng(5).normal(0, 50, page.shape), 0, 255).astype(np.uint8)

    assert character_height(noisy) == pytest.approx(character_height(page), abs=3)


def test_blank_page_has_no_character_height() -> None:
    assert character_height(np.full((300, 300), 255, np.uint8)) is None
    assert rescale.scale_for(None, 300, 300) == 1.0


def test_blur_reads_lower_sharpness_and_a_blur_estimate(page: Gray) -> None:
    blurred = np.asarray(cv2.GaussianBlur(page, (0, 0), 4.0), dtype=np.uint8)

    assert sharpen.sharpness(page) > 0.6
    assert sharpen.sharpness(blurred) < 0.45
    assert sharpen.blur_sigma(sharpen.sharpness(blurred)) > sharpen.blur_sigma(sharpen.sharpness(page)) + 1.5


def test_unevenness_sees_shadows_not_text(page: Gray) -> None:
    height, width = page.shape
    shadow = np.linspace(1.0, 0.4, width, dtype=np.float32)[None, :] * np.ones((height, 1), np.float32)

    assert illumination.unevenness(page) < 0.05
    assert illumination.unevenness((page * shadow).astype(np.uint8)) > 0.3


def test_polarity_tells_dark_pages_from_dark_borders(page: Gray) -> None:
    framed = np.asarray(cv2.copyMakeBorder(page, 30, 30, 30, 30, cv2.BORDER_CONSTANT, value=0), dtype=np.uint8)

    assert polarity.dark_paper(255 - page)[0] > 0.8
    assert polarity.dark_paper(page)[0] < 0.2
    assert polarity.dark_paper(framed)[0] < 0.6


def test_character_height_is_not_fooled_by_a_picture() -> None:
    line = render(("The quick brown fox jumps",))
    with_picture = line.copy()
    with_picture[8:63, 520:650] = 40  # a dark block with more ink than the whole line of text

    assert int((with_picture[8:63, 520:650] < 128).sum()) > int((line < 128).sum())
    assert character_height(with_picture) == pytest.approx(character_height(line), abs=2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_histogram_percentiles_match_numpy(dtype: type) -> None:
    rng = np.random.default_rng(6)
    for size in (1, 2, 3, 10, 1001, 40_000):
        values = rng.integers(0, 256 if dtype is np.uint8 else 5000, size).astype(dtype)
        shaped = values.reshape(-1, 1) if size % 2 else values.reshape(1, -1)
        qs = (0.0, 1.0, 2.0, 25.0, 50.0, 95.0, 98.0, 99.0, 99.5, 100.0)

        assert percentiles(shaped, qs) == pytest.approx(tuple(np.percentile(values, qs)), abs=1e-9)


def test_letter_count_counts_the_letters_of_a_line() -> None:
    line = render(("gray puppy dogs",), size=40, margin=20)  # no dotted letters: one blob each

    found = letters(line)

    assert found.whole_page
    assert found.count == len("graypuppydogs")
