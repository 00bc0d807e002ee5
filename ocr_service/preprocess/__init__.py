"""Page preprocessing before recognition: one module per step, `policy` decides for `auto`.

Steps, in the order they run (`STEP_NAMES`): invert, denoise, illumination, contrast, upscale,
sharpen, orientation, deskew, binarize, border. Under `auto` each measures the page and runs only
if `policy` says the page needs it; `options.steps` forces a step on (True) or off (False), and
`mode="none"` turns off every step not forced on.

The engine calls `preprocess` once per page inside a worker thread (nothing is shared between
calls except each thread's warm OSD engine) and recognises the image it returns. The report says
what happened, for the response's JSON::

    {"mode": "auto",
     "steps": [{"name": "deskew", "applied": true, "decision": "auto",
                "reason": "skew 3.20 deg vs 0.4, rising 33.5 px across the text",
                "params": {"skew": 3.2, "confidence": 17.5, "rise": 33.5, "angle": 3.2}, "ms": 4.1}, ...],
     "orientation": {"angle": 90, "script": "Latin", "confidence": 7.1} | None,
     "scale": 2.0,
     "transform": {"rotate": 270, "deskew": 3.2, "scale": 2.0, "size": [w, h], "source_size": [w0, h0],
                   "to_source": [[a, b, c], [d, e, f], [0, 0, 1]]},
     "ms": 12.5}

`steps` lists every step, including those that were off (`decision: "off"`) or not needed
(`applied: false`, with the measured `reason`). `orientation` is OSD's answer when it ran: the page
content was turned `angle` degrees clockwise; `transform.rotate` is the clockwise quarter turn
applied to correct it, `transform.deskew` the skew (degrees, counter-clockwise positive) rotated
away, `transform.scale` the overall scale factor. `transform.to_source` maps a point (x, y, 1) of
the returned image to the page the client sent, and
`map_bbox(bbox, transform["to_source"], transform["source_size"])` turns a word box into page
coordinates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ocr_service.options import PREPROCESS_STEPS, PreprocessOptions
from ocr_service.preprocess.geometry import map_bbox
from ocr_service.preprocess.pipeline import STEPS, Report, run

STEP_NAMES: tuple[str, ...] = tuple(name for name, _ in STEPS)
"""The steps in the order they run (`PREPROCESS_STEPS` lists the same names for the API)."""

if set(STEP_NAMES) != set(PREPROCESS_STEPS):
    raise RuntimeError("ocr_service.options.PREPROCESS_STEPS and the preprocessing pipeline disagree")

__all__ = ["STEP_NAMES", "Report", "map_bbox", "preprocess"]


def preprocess(
    image: NDArray[np.generic],
    options: PreprocessOptions,
    *,
    dpi: int | None = None,
    checkpoint: Callable[[str], None] | None = None,
) -> tuple[NDArray[np.uint8], Report]:
    """Prepare one decoded page (uint8 gray (H, W) or BGR (H, W, 3)) for Tesseract.

    Returns the 8-bit gray image to recognise and the JSON-able report described above. `dpi`, when
    the document states it, only guides forced upscaling of pages where no text could be measured.
    Raises ValueError for an unknown step name or mode (the HTTP layer validates these first).
    `checkpoint(step)` runs before each step that will run, so the caller's deadline can stop the
    page between steps (it raises to stop).
    """
    return run(image, options, dpi=dpi, checkpoint=checkpoint)
