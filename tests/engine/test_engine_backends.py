"""Choosing the engine for `Settings.engine`, and the version facts reported with results."""

from __future__ import annotations

import pytest

from ocr_service.engine.backends import EngineUnavailableError, library_versions, load_backend


def test_auto_prefers_the_warm_engine_when_it_works() -> None:
    assert load_backend("auto").info.name == "capi"


@pytest.mark.parametrize("choice", ["capi", "tesserocr", "pytesseract"])
def test_explicit_choices(choice: str) -> None:
    backend = load_backend(choice)
    assert backend.info.name == choice
    assert backend.info.version == library_versions()["tesseract"]


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(EngineUnavailableError, match="unknown engine"):
        load_backend("ocropus")


def test_versions_are_parsed() -> None:
    versions = library_versions()
    assert versions["tesseract"].startswith("5.")
    assert versions["leptonica"].startswith("1.")
