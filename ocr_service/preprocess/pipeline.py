"""The runner: takes a page through the steps in order, timing and reporting each.

Order matters and is fixed. A light-on-dark page is inverted first (every step assumes dark
ink). Noise, lighting and contrast are repaired next, since every later measurement reads better
on a clean page (grain that flattening a shadow amplifies is smoothed there too). Then the text
is brought to a readable size and sharpened, turned upright and straightened, and only then
thresholded and cleaned. For each step the runner asks the options (forced on/off, or
`mode=none`) and otherwise `policy` (for `auto`), so a step the page does not need costs only its
measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.typing import NDArray

from ocr_service.options import PreprocessOptions
from ocr_service.preprocess import (
    binarize,
    border,
    contrast,
    denoise,
    deskew,
    illumination,
    orientation,
    polarity,
    policy,
    rescale,
    sharpen,
)
from ocr_service.preprocess.base import Outcome, Params
from ocr_service.preprocess.geometry import Matrix, identity
from ocr_service.preprocess.measure import Gray, Letters, letters, to_gray

Report = dict[str, object]


@dataclass
class Page:
    """The page as it moves through the steps, and what the steps learned about it."""

    image: Gray
    dpi: int | None
    forward: Matrix = field(default_factory=identity)
    applied: set[str] = field(default_factory=set)
    orientation: dict[str, object] | None = None
    rotate: int = 0
    skew: float = 0.0
    grain_smoothed: bool = False
    """The denoise step smoothed grain: soft edges are its doing, not blur to sharpen."""
    version: int = 0
    """Bumped whenever the image changes; keys the caches below (ids of freed arrays get reused)."""
    _cache: dict[str, tuple[int, object]] = field(default_factory=dict)

    def _cached(self, name: str, compute: Callable[[Gray], object]) -> object:
        hit = self._cache.get(name)
        if hit is None or hit[0] != self.version:
            hit = (self.version, compute(self.image))
            self._cache[name] = hit
        return hit[1]

    def letters(self) -> Letters:
        """Letter height and count of the current image (one labelling of its ink per image)."""
        return cast(Letters, self._cached("letters", letters))

    def char_height(self) -> float | None:
        """Typical letter height of the current image (measured once per image)."""
        return self.letters().height

    def sharpness(self) -> float:
        """Edge steepness of the current image (measured once per image: sharpen and binarize both ask)."""
        return cast(float, self._cached("sharpness", sharpen.sharpness))

    def ink_points(self) -> deskew.InkPoints | None:
        """The current image's ink as points for projection profiles (shared by orientation and deskew)."""
        return cast(deskew.InkPoints | None, self._cached("points", deskew.ink_points))

    def estimate_skew(self) -> deskew.Skew:
        """Skew of the current image's text lines (measured once per image)."""
        points = self.ink_points()
        skew = self._cached("skew", lambda _: deskew.Skew(0.0, 0.0, 0.0) if points is None else deskew.skew_of(points))
        return cast(deskew.Skew, skew)

    def take(self, outcome: Outcome) -> None:
        if outcome.image is not self.image:
            self.image = outcome.image
            self.version += 1
        if outcome.matrix is not None:
            self.forward = outcome.matrix @ self.forward


@dataclass
class StepRun:
    """What one step did: `outcome` None means it measured and decided not to act."""

    outcome: Outcome | None
    measures: Params
    reason: str


StepFunction = Callable[[Page, bool], StepRun]
"""A step adapter: (page, forced) -> run; `forced` skips the policy and always acts."""


def _invert(page: Page, forced: bool) -> StepRun:
    dark_fraction, dark_frame = polarity.dark_paper(page.image)
    decision = policy.invert(dark_fraction, dark_frame)
    outcome = polarity.invert(page.image) if decision.run or forced else None
    measures: Params = {"dark_fraction": round(dark_fraction, 3), "dark_frame": round(dark_frame, 3)}
    return StepRun(outcome, measures, "forced" if forced else decision.reason)


def _denoise(page: Page, forced: bool) -> StepRun:
    density = denoise.impulse_density(page.image)
    impulses = policy.denoise_impulses(density)
    outcome: Outcome | None = None
    if impulses.run or forced:
        outcome = denoise.remove_impulses(page.image, dense=policy.dense_impulses(density))
        page.take(outcome)
    # Grain is measured after the impulses are gone: isolated dots would inflate it.
    sigma = denoise.grain_sigma(page.image)
    grain = policy.denoise_grain(sigma)
    if grain.run or (forced and sigma > 3.0):
        smoothed = denoise.smooth_grain(page.image)
        page.grain_smoothed = True
        page.take(smoothed)
        residual = denoise.grain_sigma(page.image)
        params = {**(outcome.params if outcome else {}), **smoothed.params, "residual_grain": round(residual, 2)}
        outcome = Outcome(smoothed.image, params)
        if policy.non_local_means(residual, page.image.size).run:
            heavy = denoise.non_local_means(page.image, residual)
            outcome = Outcome(heavy.image, {**outcome.params, **heavy.params})
            page.take(outcome)
    measures: Params = {"impulse_density": round(density, 5), "grain_sigma": round(sigma, 2)}
    return StepRun(outcome, measures, "forced" if forced else f"{impulses.reason}; {grain.reason}")


def _smooth_amplified_grain(page: Page, outcome: Outcome, measures: Params) -> Outcome:
    """Flattening a shadow or stretching faint contrast multiplies the grain along with the ink:
    measure it again and smooth it if it now exceeds what the denoise step would have let pass."""
    grain = denoise.grain_sigma(outcome.image)
    measures["grain_after"] = round(grain, 2)
    if not policy.denoise_grain(grain).run:
        return outcome
    smoothed = denoise.soften_grain(outcome.image)
    page.grain_smoothed = True
    return Outcome(smoothed.image, {**outcome.params, "then": smoothed.params}, outcome.matrix)


def _illumination(page: Page, forced: bool) -> StepRun:
    unevenness = illumination.unevenness(page.image, page.char_height())
    decision = policy.illumination(unevenness)
    measures: Params = {"unevenness": round(unevenness, 3)}
    if not (decision.run or forced):
        return StepRun(None, measures, decision.reason)
    outcome = _smooth_amplified_grain(page, illumination.flatten(page.image, page.char_height()), measures)
    return StepRun(outcome, measures, "forced" if forced else decision.reason)


def _contrast(page: Page, forced: bool) -> StepRun:
    low, high = contrast.contrast_span(page.image)
    decision = policy.contrast(low, high)
    measures: Params = {"low": round(low, 1), "high": round(high, 1)}
    if not (decision.run or forced):
        return StepRun(None, measures, decision.reason)
    outcome = _smooth_amplified_grain(page, contrast.stretch(page.image), measures)
    return StepRun(outcome, measures, "forced" if forced else decision.reason)


def _upscale(page: Page, forced: bool) -> StepRun:
    height, width = page.image.shape
    char = page.char_height()
    factor = rescale.scale_for(char, width, height)
    if forced and char is not None:
        factor = round(min(rescale.TARGET_HEIGHT / char, rescale.MAX_UPSCALE), 3)
    elif forced and page.dpi and page.dpi < 300:
        factor = round(300 / page.dpi, 3)
    decision = policy.upscale(factor)
    outcome = rescale.resize(page.image, factor) if decision.run or (forced and factor != 1.0) else None
    measures: Params = {"char_height": None if char is None else round(char, 1)}
    return StepRun(outcome, measures, "forced" if forced else decision.reason)


def _sharpen(page: Page, forced: bool) -> StepRun:
    steepness = page.sharpness()
    sigma = sharpen.blur_sigma(steepness)
    decision = policy.sharpen(steepness, smoothed=page.grain_smoothed)
    outcome = sharpen.unsharp(page.image, max(sigma, 1.0)) if decision.run or forced else None
    measures: Params = {"sharpness": round(steepness, 3), "blur_sigma": round(sigma, 2)}
    return StepRun(outcome, measures, "forced" if forced else decision.reason)


def _orientation(page: Page, forced: bool) -> StepRun:
    skew = page.estimate_skew()
    evidence = orientation.line_evidence(page.ink_points(), skew.angle, skew.confidence)
    lines = "unclear" if evidence is None else evidence.direction
    ratio = 1.0 if evidence is None else evidence.ascender_ratio
    found_letters = page.letters()
    glyphs = found_letters.count if found_letters.whole_page else None
    measures: Params = {"lines": lines, "ascender_ratio": round(ratio, 2), "glyphs": glyphs}
    screen = policy.needs_osd(lines, ratio, glyphs)
    if not screen.run and not forced:
        return StepRun(None, measures, screen.reason)
    found = orientation.detect(page.image, page.char_height())
    if found is None:
        return StepRun(None, measures, policy.orientation(None, 0.0, "", lines, ratio).reason)
    page.orientation = found.as_report()
    decision = policy.orientation(found.angle, found.confidence, found.script, lines, ratio)
    measures.update(found.as_report(), script_confidence=round(found.script_confidence, 2))
    outcome = None
    if found.angle != 0 and (decision.run or forced):
        outcome = orientation.rotate_upright(page.image, found)
        page.rotate = found.correction
    return StepRun(outcome, measures, "forced" if forced else decision.reason)


def _deskew(page: Page, forced: bool) -> StepRun:
    skew = page.estimate_skew()
    decision = policy.deskew(skew.angle, skew.confidence, skew.rise)
    measures: Params = {
        "skew": round(skew.angle, 2),
        "confidence": round(skew.confidence, 2),
        "rise": round(skew.rise, 1),
    }
    outcome = None
    if decision.run or (forced and abs(skew.angle) >= 0.05):
        outcome = deskew.straighten(page.image, skew.angle)
        page.skew = skew.angle
    return StepRun(outcome, measures, "forced" if forced else decision.reason)


def _binarize(page: Page, forced: bool) -> StepRun:
    repaired = "illumination" in page.applied or "contrast" in page.applied
    if not (repaired or forced):
        return StepRun(None, {}, policy.binarize(1.0, sharpened=False, repaired=False).reason)
    sharpness = page.sharpness()
    decision = policy.binarize(sharpness, sharpened="sharpen" in page.applied, repaired=repaired)
    measures: Params = {"sharpness": round(sharpness, 3)}
    outcome = None
    if decision.run or forced:
        residual = illumination.unevenness(page.image)
        measures["unevenness"] = round(residual, 3)
        if residual > policy.UNEVENNESS / 2:
            window = int(2 * (page.char_height() or 20.0))
            outcome = binarize.sauvola(page.image, window)
        else:
            outcome = binarize.otsu(page.image)
    return StepRun(outcome, measures, "forced" if forced else decision.reason)


def _border(page: Page, forced: bool) -> StepRun:
    decision = policy.border("binarize" in page.applied)
    outcome = border.clean(page.image, page.char_height()) if decision.run or forced else None
    return StepRun(outcome, {}, "forced" if forced else decision.reason)


STEPS: tuple[tuple[str, StepFunction], ...] = (
    ("invert", _invert),
    ("denoise", _denoise),
    ("illumination", _illumination),
    ("contrast", _contrast),
    ("upscale", _upscale),
    ("sharpen", _sharpen),
    ("orientation", _orientation),
    ("deskew", _deskew),
    ("binarize", _binarize),
    ("border", _border),
)
"""Every step, in the order it runs. Names match `ocr_service.options.PREPROCESS_STEPS`."""


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


_IDENTITY_TO_SOURCE = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def _transform(page: Page, source: tuple[int, int]) -> Report:
    if not page.rotate and not page.skew and np.array_equal(page.forward, identity()):
        # Nothing moved the page (always so with preprocess=none): skip inv/det, a tenth of that path's cost.
        to_source, scale = _IDENTITY_TO_SOURCE, 1.0
    else:
        inverse = np.linalg.inv(page.forward)
        to_source = [[round(float(v), 6) for v in row] for row in inverse]
        scale = float(np.sqrt(abs(np.linalg.det(page.forward[:2, :2]))))
    height, width = page.image.shape
    return {
        "rotate": page.rotate,
        "deskew": round(page.skew, 2),
        "scale": round(scale, 4),
        "size": [width, height],
        "source_size": [source[1], source[0]],
        "to_source": [list(row) for row in to_source],
    }


def run(
    image: NDArray[np.generic],
    options: PreprocessOptions,
    *,
    dpi: int | None = None,
    checkpoint: Callable[[str], None] | None = None,
) -> tuple[Gray, Report]:
    """Preprocess one decoded page; see `ocr_service.preprocess.preprocess` for the report's shape."""
    start = time.perf_counter()
    unknown = set(options.steps) - {name for name, _ in STEPS}
    if unknown:
        raise ValueError(f"unknown preprocessing step(s): {', '.join(sorted(unknown))}")
    if options.mode not in ("auto", "none"):
        raise ValueError(f"preprocess mode must be 'auto' or 'none', got {options.mode!r}")
    gray = to_gray(image)
    page = Page(gray, dpi)
    steps: list[Report] = []
    for name, function in STEPS:
        forced = options.steps.get(name)
        if forced is False or (forced is None and options.mode == "none"):
            steps.append({"name": name, "applied": False, "decision": "off", "params": {}, "ms": 0.0})
            continue
        if checkpoint is not None:
            checkpoint(name)
        step_start = time.perf_counter()
        if min(page.image.shape) < 8:
            steps.append({"name": name, "applied": False, "decision": "image too small", "params": {}, "ms": 0.0})
            continue
        result = function(page, bool(forced))
        if result.outcome is not None and result.outcome.image is not page.image:
            page.take(result.outcome)  # steps that chain filters have taken their outcome already
        applied = result.outcome is not None
        if applied:
            page.applied.add(name)
        params: Params = {**result.measures, **(result.outcome.params if result.outcome else {})}
        steps.append(
            {
                "name": name,
                "applied": applied,
                "decision": "forced" if forced else "auto",
                "reason": result.reason,
                "params": params,
                "ms": _ms(step_start),
            }
        )
    transform = _transform(page, gray.shape)
    report: Report = {
        "mode": options.mode,
        "steps": steps,
        "orientation": page.orientation,
        "scale": transform["scale"],
        "transform": transform,
        "ms": _ms(start),
    }
    return np.ascontiguousarray(page.image), report
