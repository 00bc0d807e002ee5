"""The shared option parser, Accept negotiation and readiness registry, without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.requests import Request

from ocr_service.engine.languages import resolve_lang
from ocr_service.errors import InvalidParameter, NotAcceptable, UnknownLanguage
from ocr_service.http.negotiation import negotiate_format
from ocr_service.http.ocr import PARSED_QUERIES_KEPT, OcrEndpoint
from ocr_service.http.params import check_json_types, parse_options
from ocr_service.http.readiness import ReadinessChecks, cached
from ocr_service.options import OutputFormat
from ocr_service.pipeline import OcrPipeline
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


def test_a_space_between_languages_is_a_plus(settings: Settings) -> None:
    """`?lang=eng+deu` typed into a URL arrives as `eng deu`: it means the same."""
    assert parse_options({"lang": "eng deu"}, settings, resolve_lang).lang == "eng+deu"


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
        ({"lang": "eng  deu"}, "lang"),
        ({"lang": " eng"}, "lang"),
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


# -- the endpoint's memo of parsed query strings ------------------------------------------------


def ocr_request(query: str, accept: str | None = None) -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    scope = {"type": "http", "method": "POST", "path": "/v1/ocr", "query_string": query.encode(), "headers": headers}
    return Request(scope)


@pytest.fixture
def endpoint(settings: Settings) -> OcrEndpoint:
    return OcrEndpoint(settings, OcrPipeline(settings))


def test_remembered_options_follow_the_query_and_accept(endpoint: OcrEndpoint) -> None:
    for _ in range(2):  # the second round is answered from the memo
        assert endpoint.options(ocr_request("psm=4"), {}).format is OutputFormat.JSON
        assert endpoint.options(ocr_request("psm=4", "text/plain"), {}).format is OutputFormat.TEXT
        text = endpoint.options(ocr_request("psm=4&format=text"), {})
        assert (text.psm, text.format) == (4, OutputFormat.TEXT)
        assert endpoint.options(ocr_request("psm=7&format=text"), {}).psm == 7
    assert endpoint.options(ocr_request("psm=4&format=text"), {}) is text


def test_a_bad_query_fails_every_time(endpoint: OcrEndpoint) -> None:
    endpoint.options(ocr_request("psm=4"), {})
    for _ in range(2):
        with pytest.raises(InvalidParameter) as caught:
            endpoint.options(ocr_request("psm=4&psm=5"), {})
        assert caught.value.param == "psm"
        with pytest.raises(UnknownLanguage):
            endpoint.options(ocr_request("lang=klingon"), {})


def test_body_options_are_parsed_with_the_query_every_time(endpoint: OcrEndpoint) -> None:
    assert endpoint.options(ocr_request("format=text"), {}).psm == 6
    assert endpoint.options(ocr_request("format=text"), {"psm": "4"}).psm == 4
    with pytest.raises(InvalidParameter):
        endpoint.options(ocr_request("format=text&psm=5"), {"psm": "4"})


def test_page_lists_and_many_distinct_queries_keep_the_memo_small(endpoint: OcrEndpoint) -> None:
    assert endpoint.options(ocr_request("pages=1-5000"), {}).pages == tuple(range(1, 5001))
    for psm in range(3, 14):
        for dpi in range(100, 100 + PARSED_QUERIES_KEPT // 8):
            assert endpoint.options(ocr_request(f"psm={psm}&dpi={dpi}"), {}).dpi == dpi
    assert len(endpoint._parsed_queries) <= PARSED_QUERIES_KEPT
    assert all(options.pages is None for options in endpoint._parsed_queries.values())
