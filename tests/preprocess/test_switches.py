"""Each step obeys its switch (forced on, forced off, or left to `auto`) and the report says so."""

from __future__ import annotations

import numpy as np
import pytest
from preprocess_pages import Gray

from ocr_service.options import PREPROCESS_STEPS, PreprocessOptions
from ocr_service.preprocess import STEP_NAMES, preprocess

ALWAYS_ACTS_WHEN_FORCED = ("invert", "denoise", "illumination", "contrast", "sharpen", "binarize", "border", "upscale")
"""Steps that change the page whenever forced on (orientation and deskew only act on what they find)."""


def steps_by_name(report: dict[str, object]) -> dict[str, dict[str, object]]:
    steps = report["steps"]
    assert isinstance(steps, list)
    return {step["name"]: step for step in steps}


def test_pipeline_and_api_name_the_same_steps() -> None:
    assert sorted(STEP_NAMES) == sorted(PREPROCESS_STEPS)


def test_mode_none_returns_the_page_untouched(page: Gray) -> None:
    image, report = preprocess(page, PreprocessOptions(mode="none"))

    assert np.array_equal(image, page)
    assert all(step["decision"] == "off" and step["applied"] is False for step in steps_by_name(report).values())
    assert report["transform"]["to_source"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]  # type: ignore[index]


@pytest.mark.parametrize("name", STEP_NAMES)
def test_step_forced_off_does_not_run_under_auto(page: Gray, name: str) -> None:
    # Force everything on except `name`, so that `name` would have had every reason to run.
    steps = {other: other != name for other in STEP_NAMES}
    _, report = preprocess(page, PreprocessOptions(mode="auto", steps=steps))

    by_name = steps_by_name(report)
    assert by_name[name]["applied"] is False
    assert by_name[name]["decision"] == "off"
    assert by_name[name]["ms"] == 0.0


@pytest.mark.parametrize("name", ALWAYS_ACTS_WHEN_FORCED)
def test_step_forced_on_runs_alone_under_none(page: Gray, name: str) -> None:
    image, report = preprocess(page, PreprocessOptions(mode="none", steps={name: True}))

    by_name = steps_by_name(report)
    assert by_name[name]["applied"] is True
    assert by_name[name]["decision"] == "forced"
    assert by_name[name]["ms"] > 0  # type: ignore[operator]
    assert [step for step, entry in by_name.items() if entry["applied"]] == [name]
    if name == "binarize":
        assert set(np.unique(image)) <= {0, 255}
    if name == "upscale":
        assert report["scale"] != 1.0


def test_orientation_and_deskew_forced_on_report_what_they_found(page: Gray) -> None:
    _, report = preprocess(page, PreprocessOptions(mode="none", steps={"orientation": True, "deskew": True}))

    by_name = steps_by_name(report)
    assert by_name["orientation"]["decision"] == "forced"
    assert by_name["orientation"]["params"]["angle"] == 0  # type: ignore[index]  # OSD ran and saw it upright
    assert report["orientation"] is not None
    assert by_name["deskew"]["decision"] == "forced"
    assert abs(by_name["deskew"]["params"]["skew"]) < 0.3  # type: ignore[index,arg-type]


def test_auto_on_a_clean_page_applies_nothing(page: Gray) -> None:
    image, report = preprocess(page, PreprocessOptions())

    assert [name for name, step in steps_by_name(report).items() if step["applied"]] == []
    assert np.array_equal(image, page)
    assert all(step["decision"] == "auto" for step in steps_by_name(report).values())


def test_unknown_step_and_mode_are_refused(page: Gray) -> None:
    with pytest.raises(ValueError, match="unknown preprocessing step"):
        preprocess(page, PreprocessOptions(steps={"sparkle": True}))
    with pytest.raises(ValueError, match="mode"):
        preprocess(page, PreprocessOptions(mode="maximum"))
