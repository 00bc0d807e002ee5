"""The shared option parser, Accept negotiation and readiness registry, without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ocr_service.engine.languages import resolve_lang
from ocr_service.errors import InvalidParameter, NotAcceptable, UnknownLanguage
from ocr_service.http.negotiation import negotiate_format
from ocr_service.http.params import check_json_types, parse_options
from ocr_service.http.readiness import ReadinessChecks, cached
from ocr_service.options import OutputFormat
from ocr_service.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path), default_psm=6, pdf_dpi=200, max_dpi=400, default_preprocess="none")


def test_defaults_come_from_settings(settings: Settings) -> None:
    options = parse_options({}, settings, resolve_lang)
    assert (options.lang, options.psm, options.oem, options.dpi) == ("eng", 6, 1, 200)
    assert options.pages is None and options.preprocess.mode == "none" and options.format is OutputFormat.JSON


def test_every_option_parses(settings: Settings) -> None:
    options = parse_options(
        {
            "lang": "deu+eng",
            "psm": "4",
            "oem": 3,
            "dpi": "400",
            "pages": "3-4,1,3",
            "preprocess": "auto",
            "deskew": "true",
            "binarize": False,
            "format": "hocr",
        },
        settings,
        resolve_lang,
    )
    assert options.lang == "deu+eng"
    assert (options.psm, options.oem, options.dpi) == (4, 3, 400)
    assert options.pages == (3, 4, 1)
    assert options.preprocess.mode == "auto"
    assert options.preprocess.steps == {"deskew": True, "binarize": False}
    assert options.format is OutputFormat.HOCR


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"psm": " 6"}, "psm"),
        ({"psm": "+6"}, "psm"),
        ({"psm": "6\n"}, "psm"),
        ({"pages": "1\n"}, "pages"),
        ({"lang": "eng\n"}, "lang"),
        ({"psm": ""}, "psm"),
        ({"psm": 6.0}, "psm"),
        ({"oem": True}, "oem"),
        ({"dpi": "401"}, "dpi"),
        ({"dpi": "35"}, "dpi"),
        ({"pages": "1, 2"}, "pages"),
        ({"pages": "1,,2"}, "pages"),
        ({"pages": "10001"}, "pages"),
        ({"preprocess": "AUTO"}, "preprocess"),
        ({"format": ""}, "format"),
        ({"upscale": "yes"}, "upscale"),
        ({"lang": ""}, "lang"),
        ({"lang": "eng deu"}, "lang"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_values_name_their_parameter(settings: Settings, raw: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_options(raw, settings, resolve_lang)  # type: ignore[arg-type]
    assert caught.value.param == param
    assert caught.value.status == 400


def test_unknown_language_is_its_own_problem(settings: Settings) -> None:
    with pytest.raises(UnknownLanguage) as caught:
        parse_options({"lang": "eng+xx"}, settings, resolve_lang)
    assert caught.value.param == "lang" and "xx" in caught.value.detail


def test_json_members_must_have_json_types() -> None:
    check_json_types({"psm": 6, "deskew": True, "lang": "eng"})
    for raw in ({"psm": "6"}, {"deskew": "true"}, {"lang": 5}, {"dpi": None}, {"oem": True}):
        with pytest.raises(InvalidParameter):
            check_json_types(raw)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, OutputFormat.JSON),
        ("", OutputFormat.JSON),
        ("application/pdf", OutputFormat.PDF),
        ("text/html;q=0.9, text/plain", OutputFormat.TEXT),
        ("text/plain;q=0.4, application/xml;q=0.8", OutputFormat.ALTO),
        ("*/*;q=0.1, text/tab-separated-values", OutputFormat.TSV),
        ("application/*", OutputFormat.JSON),
        ("text/plain;q=0.5, text/*;q=0.5", OutputFormat.TEXT),
        ("image/webp, */*;q=0.8", OutputFormat.JSON),
    ],
)
def test_accept_negotiation(accept: str | None, expected: OutputFormat) -> None:
    assert negotiate_format(accept) is expected


@pytest.mark.parametrize("accept", ["image/png", "text/plain;q=0", "application/json;q=abc", "video/*"])
def test_unsatisfiable_accept(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        negotiate_format(accept)


async def test_readiness_checks_run_concurrently_with_time_limits() -> None:
    checks = ReadinessChecks()

    async def ok() -> None:
        await asyncio.sleep(0.01)

    async def hangs() -> None:
        await asyncio.sleep(30)

    async def fails() -> None:
        raise RuntimeError("disk full")

    checks.add("ok", ok)
    checks.add("hangs", hangs, timeout=0.2)
    checks.add("fails", fails)
    with pytest.raises(ValueError, match="already registered"):
        checks.add("ok", ok)
    results = {result.name: result for result in await asyncio.wait_for(checks.run_all(), timeout=5)}
    assert results["ok"].ok
    assert not results["hangs"].ok and "0.2 s" in results["hangs"].detail
    assert not results["fails"].ok and results["fails"].detail == "disk full"


async def test_cached_check_reruns_only_after_its_window() -> None:
    now = [0.0]
    calls = []

    async def probe() -> None:
        calls.append(now[0])
        if len(calls) == 2:
            raise RuntimeError("flaky")

    check = cached(probe, 10, clock=lambda: now[0])
    await check()
    now[0] = 9.9
    await check()
    assert calls == [0.0]
    now[0] = 10.0
    with pytest.raises(RuntimeError, match="flaky"):
        await check()
    now[0] = 15.0
    with pytest.raises(RuntimeError, match="flaky"):
        await check()  # the failure is replayed inside the window
    assert len(calls) == 2
