"""Pages decode straight to 8-bit grey in bounded memory (issue 10, item 9).

A 16-bit grey 40 Mpx PNG took one request from 437 to 1166 MB (three float64 copies of the page);
an RGB one kept an RGB array and a BGR copy until preprocessing made it grey anyway. numpy's
allocations are traced by `tracemalloc`, so the tests measure what decoding allocates beyond
Pillow's own image.
"""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from ocr_service.documents import open_document
from ocr_service.preprocess.measure import to_gray
from ocr_service.settings import Settings

SETTINGS = Settings(workers=1)
WIDTH, HEIGHT = 4000, 2500  # 10 Mpx: big enough that a full-page copy shows, small enough to be quick


def encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def sixteen_bit_page() -> bytes:
    ramp = (np.arange(WIDTH * HEIGHT, dtype=np.uint32) % 60000 + 1000).astype(np.uint16).reshape(HEIGHT, WIDTH)
    return encode(Image.fromarray(ramp))  # uint16: mode I;16


def rgb_page() -> bytes:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels, mode="RGB"))


def traced_peak_decoding(data: bytes) -> tuple[np.ndarray, int]:
    document = open_document(data, SETTINGS)
    tracemalloc.start()
    try:
        page = document.load_page(1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        document.close()
    return page.pixels, peak


@pytest.mark.parametrize("make", [sixteen_bit_page, rgb_page], ids=["16-bit-grey", "rgb"])
def test_a_page_decodes_to_uint8_grey_with_one_page_of_extra_memory(make: object) -> None:
    pixels, peak = traced_peak_decoding(make())  # type: ignore[operator]
    assert pixels.dtype == np.uint8 and pixels.shape == (HEIGHT, WIDTH)
    # The grey result (10 MB), a band and decoder buffers; an RGB copy of the page alone is 30 MB, a float64 one 80 MB.
    assert peak < 2.5 * WIDTH * HEIGHT, (
        f"decoding allocated {peak / 1e6:.0f} MB for a {WIDTH * HEIGHT / 1e6:.0f} Mpx page"
    )


def test_sixteen_bit_is_stretched_onto_the_full_eight_bit_range() -> None:
    pixels, _ = traced_peak_decoding(sixteen_bit_page())
    assert int(pixels.min()) == 0 and int(pixels.max()) == 255


def test_colour_decodes_to_the_grey_preprocessing_would_have_made() -> None:
    """Converting at decode time changes no pixel recognition sees: the same luma as `to_gray` on BGR."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(300, 700, 3), dtype=np.uint8)
    page = open_document(encode(Image.fromarray(rgb, mode="RGB")), SETTINGS).load_page(1)
    assert np.array_equal(page.pixels, to_gray(np.ascontiguousarray(rgb[:, :, ::-1])))
