"""What every preprocessing step returns, so the pipeline can time, report and compose them."""

from __future__ import annotations

from dataclasses import dataclass, field

from ocr_service.preprocess.geometry import Matrix
from ocr_service.preprocess.measure import Gray

Params = dict[str, object]
"""JSON-able description of what a step measured or did (angles, sizes, thresholds)."""


@dataclass
class Outcome:
    """A step's output image, its parameters for the report and, if pixels moved, its transform.

    `matrix` maps a point of the step's input to its output (3x3, homogeneous); None when the step
    only changed intensities.
    """

    image: Gray
    params: Params = field(default_factory=dict)
    matrix: Matrix | None = None
