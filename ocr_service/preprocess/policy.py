"""What `preprocess=auto` does to a page: for each step, whether its measure says the page needs it.

Every threshold lives here, next to the reason for it, so tuning `auto` is a change to one
file that the accuracy benchmark (`benchmarks/accuracy.py`) then checks family by family. Steps
measure; this module decides. A `Decision` carries its reason into the report, so a client can see
why a step ran or did not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str


DARK_PAPER = 0.6
"""A page is light-on-dark when this share of it, and of its outer frame, is on the dark side."""
IMPULSE_DENSITY = 0.005
"""Isolated salt/pepper dots above this fraction of pixels call for the switching median. Clean scans
have almost none and dusty ones a few per thousand, which Tesseract's own blob filter ignores."""
DENSE_IMPULSES = 0.01
"""Above this, dots also cling to strokes: a 3x3 median over the page follows the switching median."""
GRAIN_SIGMA = 12.0
"""Paper grain with a standard deviation above this (grey levels, as measured on the blank paper)
calls for smoothing; lower grain is harmless to Tesseract."""
HEAVY_GRAIN = 12.0
"""Grain still left after the median above this calls for non-local means, which costs about as much
as recognising the page."""
NON_LOCAL_MEANS_MAX_PIXELS = 12_000_000
"""Non-local means takes about a second per 4 megapixels on one core: larger pages do without it."""
UNEVENNESS = 0.15
"""Background brightness varying by more than this fraction of the paper's level calls for flattening."""
CONTRAST_SPAN = 170.0
"""Ink and paper closer than this many grey levels call for a stretch."""
ORIENTATION_CONFIDENCE = 6.0
"""OSD confidence needed before turning a page. Clean pages score 9-30; guesses on sparse text score
below 2, and small print shown to OSD too small has scored a wrong 5.5."""
OSD_MIN_GLYPHS = 50
"""Fewer letters than this on horizontal lines and OSD is not asked. Tesseract's OSD itself does not
try below `min_characters_to_try` (50) characters; on 50 one-line receipt crops (20-40 letters),
upright and upside down, it answered "too little text" or guessed at confidence under 2, never
enough to turn a page, at up to ~20 ms a try. Vertical or unclear lines still ask it."""
ASCENDER_SCRIPTS = frozenset({"Latin", "Cyrillic", "Greek"})
"""Scripts whose lowercase has more ascenders than descenders, so the ascender ratio can veto OSD."""
UPRIGHT_ASCENDER_RATIO = 2.0
"""Upright Latin text puts 2-10x more ink above the x-height band than below; turned over, under 0.5."""
SKEW_DEGREES = 0.4
"""Smaller skew does not hurt Tesseract, and rotating resamples (softens) every glyph."""
SKEW_CONFIDENCE = 0.2
"""How much sharper the best projection profile must be than the worst: below it the page has no text lines."""
SKEW_RISE = 2.0
"""Rows the measured tilt must lift the lines by across the text before the page is turned. Under
that the projection profile cannot tell the tilt from straight: short words of small print, which
it once read as 1 deg off, rise under a pixel there; a real skew of 0.4 deg rises 4-8 rows across
a page and about 4 across a receipt line."""
BLURRED = 0.45
"""Edge steepness below which text is blurred enough to sharpen (about a 1-pixel Gaussian blur or worse)."""
SHARPNESS = 0.6
"""Edge steepness below which a threshold would merge strokes: the page stays grey for Tesseract."""


def invert(dark_fraction: float, dark_frame: float) -> Decision:
    light_text = dark_fraction > DARK_PAPER and dark_frame > DARK_PAPER
    reason = f"dark share of page {dark_fraction:.2f}, of its frame {dark_frame:.2f} vs {DARK_PAPER}"
    return Decision(light_text, reason)


def denoise_impulses(density: float) -> Decision:
    return Decision(density > IMPULSE_DENSITY, f"impulse density {density:.4f} vs {IMPULSE_DENSITY}")


def dense_impulses(density: float) -> bool:
    return density > DENSE_IMPULSES


def denoise_grain(sigma: float) -> Decision:
    return Decision(sigma > GRAIN_SIGMA, f"grain sigma {sigma:.1f} vs {GRAIN_SIGMA}")


def non_local_means(residual_grain: float, pixels: int) -> Decision:
    if residual_grain <= HEAVY_GRAIN:
        return Decision(False, f"residual grain {residual_grain:.1f} vs {HEAVY_GRAIN}")
    if pixels > NON_LOCAL_MEANS_MAX_PIXELS:
        return Decision(False, f"page of {pixels} pixels too large for non-local means")
    return Decision(True, f"residual grain {residual_grain:.1f} vs {HEAVY_GRAIN}")


def illumination(unevenness: float) -> Decision:
    return Decision(unevenness > UNEVENNESS, f"background unevenness {unevenness:.3f} vs {UNEVENNESS}")


def contrast(low: float, high: float) -> Decision:
    span = high - low
    return Decision(span < CONTRAST_SPAN, f"ink-paper span {span:.0f} vs {CONTRAST_SPAN:.0f}")


def upscale(factor: float) -> Decision:
    return Decision(abs(factor - 1.0) > 0.05, f"scale factor {factor}")


def needs_osd(lines: str, ascender_ratio: float, glyphs: int | None = None) -> Decision:
    """OSD runs unless the lines already show an upright page (horizontal, ascenders on top), or
    they run across the page and hold too few letters for OSD to say anything (`glyphs` is None
    when only part of the page was counted). Vertical or unclear lines always ask OSD."""
    if lines == "horizontal" and ascender_ratio >= UPRIGHT_ASCENDER_RATIO:
        return Decision(False, f"upright: horizontal lines, ascender ratio {ascender_ratio:.2f}")
    if lines == "horizontal" and glyphs is not None and glyphs < OSD_MIN_GLYPHS:
        return Decision(False, f"horizontal lines, {glyphs} letters vs {OSD_MIN_GLYPHS}: too few for OSD")
    return Decision(True, f"lines {lines}, ascender ratio {ascender_ratio:.2f}: asking OSD")


def orientation(angle: int | None, confidence: float, script: str, lines: str, ascender_ratio: float) -> Decision:
    """Turn only on a confident OSD answer that the page's own lines do not contradict."""
    if angle is None:
        return Decision(False, "OSD found too little text")
    if angle == 0:
        return Decision(False, f"upright (OSD confidence {confidence:.1f})")
    quarter = angle in (90, 270)
    if (quarter and lines == "horizontal") or (not quarter and lines == "vertical"):
        return Decision(False, f"OSD says {angle} deg but the text lines are {lines}: not turning")
    if angle == 180 and script in ASCENDER_SCRIPTS and ascender_ratio > 1.0:
        return Decision(False, f"OSD says 180 deg but ascenders are on top (ratio {ascender_ratio:.2f}): not turning")
    reason = f"OSD {angle} deg, confidence {confidence:.1f} vs {ORIENTATION_CONFIDENCE}"
    return Decision(confidence >= ORIENTATION_CONFIDENCE, reason)


def deskew(angle: float, confidence: float, rise: float) -> Decision:
    """Straighten lines skewed past `SKEW_DEGREES`, if the text is wide enough to measure that tilt."""
    if confidence < SKEW_CONFIDENCE:
        return Decision(False, f"no clear text lines (confidence {confidence:.2f})")
    if abs(angle) < SKEW_DEGREES:
        return Decision(False, f"skew {angle:.2f} deg vs {SKEW_DEGREES}")
    if rise < SKEW_RISE:
        return Decision(
            False,
            f"skew {angle:.2f} deg rises only {rise:.1f} px across the text vs {SKEW_RISE}: too short to measure",
        )
    return Decision(True, f"skew {angle:.2f} deg vs {SKEW_DEGREES}, rising {rise:.1f} px across the text")


def sharpen(sharpness: float, *, smoothed: bool) -> Decision:
    """Sharpen blurred text, but not a page whose soft edges come from smoothing its grain (it would return)."""
    if smoothed:
        return Decision(False, f"sharpness {sharpness:.2f}, but the page was smoothed for grain")
    return Decision(sharpness < BLURRED, f"sharpness {sharpness:.2f} vs {BLURRED}")


def binarize(sharpness: float, sharpened: bool, repaired: bool) -> Decision:
    """Threshold only crisp pages whose lighting or contrast was repaired; Tesseract's Otsu handles the rest."""
    if sharpened or sharpness < SHARPNESS:
        return Decision(False, f"blurred (sharpness {sharpness:.2f} vs {SHARPNESS}, sharpened {sharpened})")
    return Decision(repaired, f"sharpness {sharpness:.2f}; lighting or contrast repaired: {repaired}")


def border(binarized: bool) -> Decision:
    return Decision(binarized, "page is black and white" if binarized else "page is grey (Tesseract thresholds it)")
