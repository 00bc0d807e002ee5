"""Quarter-turn orientation: Tesseract's orientation and script detection (OSD), then rotate upright.

OSD costs about as much as recognising a small page, so a cheap look at the text lines comes
first (`line_evidence`): when lines run across the page and more ink sits above the x-height band
than below it (ascenders outnumber descenders in Latin, Greek and Cyrillic text; turned upside
down it is the reverse), the page is upright and OSD is skipped. Otherwise OSD decides. Each worker
thread keeps one warm `PyTessBaseAPI` loaded with `osd.traineddata` (loading it costs more than
detecting); without tesserocr the `tesseract --psm 0` CLI answers through pytesseract. OSD guesses
wildly on sparse or tiny images, so the policy only acts on a confident answer that the line
direction does not contradict.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from ocr_service.preprocess.base import Outcome
from ocr_service.preprocess.deskew import InkPoints, skew_of
from ocr_service.preprocess.geometry import Matrix
from ocr_service.preprocess.measure import Gray, u8

OSD_CHAR_HEIGHT = 30.0
"""Character height OSD is shown the page at when its text is larger (smaller text is left as is)."""
OSD_MAX_SIDE = 6000
"""Bound on the copy OSD sees, whatever the text size, so its time stays bounded."""

_ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class Orientation:
    """OSD's answer: the page content is turned `angle` degrees clockwise (0/90/180/270)."""

    angle: int
    confidence: float
    script: str
    script_confidence: float

    @property
    def correction(self) -> int:
        """Clockwise quarter turn that brings the page upright."""
        return (360 - self.angle) % 360

    def as_report(self) -> dict[str, object]:
        return {"angle": self.angle, "script": self.script, "confidence": round(self.confidence, 2)}


@dataclass(frozen=True)
class LineEvidence:
    """What the ink's projection profiles say about the page's orientation."""

    along: float
    """Confidence that text lines run horizontally (deskew's profile sharpness)."""
    across: float
    """The same for vertical lines (a page turned by a quarter)."""
    skew: float
    """Skew of the horizontal lines, degrees counter-clockwise."""
    ascender_ratio: float
    """Ink above the lines' x-height band over ink below it: > 1 upright Latin, < 1 upside down."""

    @property
    def horizontal(self) -> bool:
        return self.along > 0.8 and self.along > 2.5 * self.across

    @property
    def vertical(self) -> bool:
        return self.across > 0.8 and self.across > 2.5 * self.along

    @property
    def direction(self) -> str:
        return "horizontal" if self.horizontal else "vertical" if self.vertical else "unclear"


def _ascender_ratio(profile: NDArray[np.float64]) -> float:
    """Sum over text lines of ink above the dense core band versus ink below it."""
    present = profile > 0.02 * float(profile.max(initial=0.0))
    above = below = 0.0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], present.astype(np.int8), [0]))))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        line = profile[start:stop]
        core = np.flatnonzero(line >= 0.4 * line.max())
        above += float(line[: core[0]].sum())
        below += float(line[core[-1] + 1 :].sum())
    return above / below if below > 0 else (10.0 if above > 0 else 1.0)


def line_evidence(points: InkPoints | None, skew: float, along: float) -> LineEvidence | None:
    """Line direction and ascender/descender balance from projection profiles (a few ms).

    `skew` and `along` are deskew's estimate for the page (angle and confidence of horizontal
    lines); the same search on the transposed ink gives the confidence of vertical lines, and the
    ascender balance is read along the skew.
    """
    if points is None:
        return None
    across = skew_of(points.transposed(), fine=False).confidence
    return LineEvidence(along, across, skew, _ascender_ratio(points.profile(skew)))


_local = threading.local()


def _tesserocr_api() -> Any | None:
    """This thread's warm OSD engine, or None if tesserocr or osd.traineddata is missing."""
    if getattr(_local, "failed", False):
        return None
    api = getattr(_local, "api", None)
    if api is None:
        try:
            import tesserocr

            api = tesserocr.PyTessBaseAPI(lang="osd", psm=tesserocr.PSM.OSD_ONLY)
        except (ImportError, RuntimeError):
            _local.failed = True
            return None
        _local.api = api
    return api


def _detect_tesserocr(api: Any, gray: Gray) -> Orientation | None:
    height, width = gray.shape
    api.SetImageBytes(gray.tobytes(), width, height, 1, width)
    try:
        result = api.DetectOrientationScript()
    finally:
        api.Clear()
    if not result:
        return None
    return Orientation(
        angle=int(result["orient_deg"]) % 360,
        confidence=float(result["orient_conf"]),
        script=str(result["script_name"]),
        script_confidence=float(result["script_conf"]),
    )


def _detect_capi(gray: Gray) -> tuple[bool, Orientation | None]:
    """OSD through libtesseract's C API, which releases the GIL: (False, None) when that is not available here."""
    try:
        from ocr_service.engine.capi_engine import CapiUnavailableError, detect_orientation

        result = detect_orientation(gray)
    except (ImportError, CapiUnavailableError):
        return False, None
    if result is None:
        return True, None
    angle, confidence, script, script_confidence = result
    orientation = Orientation(angle % 360, confidence, script, script_confidence)
    return True, orientation


def _detect_cli(gray: Gray) -> Orientation | None:
    import pytesseract
    from PIL import Image

    try:
        text = pytesseract.image_to_osd(Image.fromarray(gray), config="--psm 0")
    except (pytesseract.TesseractError, OSError):
        return None
    fields = dict(re.findall(r"^([A-Za-z ]+):\s*(\S+)\s*$", text, flags=re.MULTILINE))
    try:
        return Orientation(
            angle=int(fields["Orientation in degrees"]) % 360,
            confidence=float(fields["Orientation confidence"]),
            script=fields.get("Script", "Unknown"),
            script_confidence=float(fields.get("Script confidence", "0")),
        )
    except (KeyError, ValueError):
        return None


def detect(gray: Gray, char_height: float | None = None) -> Orientation | None:
    """OSD's answer for this page, or None when it found too little text to say.

    OSD's time grows with the page, but shrinking small print makes it confidently wrong, so the
    page is only shrunk when its characters are taller than `OSD_CHAR_HEIGHT`.
    """
    factor = 1.0
    if char_height and char_height > OSD_CHAR_HEIGHT:
        factor = OSD_CHAR_HEIGHT / char_height
    factor = min(factor, OSD_MAX_SIDE / max(gray.shape))
    if factor < 1.0:
        gray = u8(cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA))
    if min(gray.shape) < 16:
        return None
    available, found = _detect_capi(gray)
    if available:
        return found
    api = _tesserocr_api()
    if api is not None:
        return _detect_tesserocr(api, np.ascontiguousarray(gray))
    return _detect_cli(gray)


def quarter_turn_matrix(clockwise: int, width: int, height: int) -> Matrix:
    """The input->output transform of rotating a `width` x `height` image clockwise by 90/180/270.

    Coordinates are pixel edges (a box [0, 0, w, h] covers the whole image), as word boxes are.
    """
    if clockwise == 90:
        return np.array([[0.0, -1.0, float(height)], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    if clockwise == 180:
        return np.array([[-1.0, 0.0, float(width)], [0.0, -1.0, float(height)], [0.0, 0.0, 1.0]])
    if clockwise == 270:
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, float(width)], [0.0, 0.0, 1.0]])
    return np.eye(3)


def rotate_upright(gray: Gray, orientation: Orientation) -> Outcome:
    """Turn the page by OSD's correction (lossless: quarter turns move whole pixels)."""
    turn = orientation.correction
    params: dict[str, object] = {"rotate": turn, **orientation.as_report()}
    if turn == 0:
        return Outcome(gray, params)
    height, width = gray.shape
    rotated = u8(np.ascontiguousarray(cv2.rotate(gray, _ROTATE_CODES[turn])))
    return Outcome(rotated, params, quarter_turn_matrix(turn, width, height))
