"""A decoded Pillow image -> the 8-bit grey page recognition uses, in bounded memory.

Recognition never needs more than 8-bit grey: preprocessing starts every page with
`preprocess.measure.to_gray` (OpenCV's BT.601 luma), and Tesseract reads grey. Keeping colour or
16-bit samples until then cost memory for nothing: a 16-bit grey 40 Mpx PNG went through three
float64 copies (+730 MB for one request) and an RGB one through an RGB array and its BGR copy.
Here every page becomes `(height, width)` uint8 at decode time, converted in bands of rows, so the
working set beyond Pillow's own decoded image is the grey result plus one band:

- 8-bit grey and bilevel: read as they are.
- 16-bit, 32-bit integer and float grey: stretched from their minimum to their maximum onto 0-255
  (as before), per band.
- RGB, palette, CMYK, YCbCr...: OpenCV's RGB->grey per band, the same luma `to_gray` computes from
  BGR, so the pixels recognition sees are unchanged to the bit.
- With transparency: flattened onto white first (dark text on a clear background stays visible).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

BAND_ROWS = 128
"""Rows converted at once: a 6000-px-wide band is 2.3 MB as RGB, 6.1 MB as float64 (32767 px: 13 / 34 MB)."""

_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})


def to_grey_uint8(image: Image.Image) -> npt.NDArray[np.uint8]:
    """The page as contiguous (height, width) uint8 grey; see the module docstring."""
    mode = image.mode
    if mode == "L":
        return np.asarray(image, dtype=np.uint8)
    if mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8)
    out = np.empty((image.height, image.width), dtype=np.uint8)
    if mode in _HIGH_DEPTH_MODES:
        extrema = image.getextrema()  # one (min, max) pair for a single-band image
        low, high = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]
        span = high - low
        for top, band in _bands(image):
            if span > 0:
                values = np.array(band, dtype=np.float64)  # one band's copy, scaled in place
                values -= low
                values *= 255.0 / span
                out[top : top + values.shape[0]] = values
            else:
                out[top : top + band.height] = 0
        return out
    has_alpha = mode in _ALPHA_MODES or "transparency" in image.info
    for top, band in _bands(image):
        out[top : top + band.height] = _band_to_grey(band, has_alpha)
    return out


def _bands(image: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    """The image cut into bands of `BAND_ROWS` rows, one at a time (each crop is a copy)."""
    for top in range(0, image.height, BAND_ROWS):
        yield top, image.crop((0, top, image.width, min(image.height, top + BAND_ROWS)))


def _band_to_grey(band: Image.Image, has_alpha: bool) -> npt.NDArray[np.uint8]:
    if has_alpha:
        rgba = band.convert("RGBA")
        flattened = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        rgb = flattened.convert("RGB")
    else:
        rgb = band if band.mode == "RGB" else band.convert("RGB")
    return np.asarray(cv2.cvtColor(np.asarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY), dtype=np.uint8)
