"""User input -> `OcrOptions`: the one parser shared by the HTTP API and the CLI.

Options arrive as query parameters, form fields, JSON members or command-line flags; all of
them are name -> value mappings, so one function validates them and every front end rejects
the same input with the same message. Each failure is an `InvalidParameter` (400) naming
the parameter, or `UnknownLanguage` from the pipeline's language check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from ocr_service import documents
from ocr_service.errors import InvalidParameter
from ocr_service.options import PREPROCESS_STEPS, OcrOptions, OutputFormat, PreprocessOptions
from ocr_service.settings import Settings

PSM_RANGE = (0, 13)
UNSUPPORTED_PSM = frozenset({0, 2})
"""Tesseract modes that produce no text: 0 only detects orientation, 2 is not implemented."""
OEM_RANGE = (0, 3)
MIN_DPI = 36
MAX_PAGE_NUMBER = 10_000
"""Highest page number a `pages` selection may name; bounds what a selection can expand to."""
MAX_PAGE_SPEC_LENGTH = 200
PREPROCESS_MODES = ("auto", "none")
LANG_PATTERN = re.compile(r"^[A-Za-z0-9_-]+([+ ][A-Za-z0-9_-]+)*$")
"""Codes joined by `+`, or by a space: in a query string an unescaped `+` arrives as a space."""
PAGES_PATTERN = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")
INTEGER_PATTERN = re.compile(r"^-?[0-9]{1,9}$")

OPTION_NAMES: tuple[str, ...] = ("lang", "psm", "oem", "dpi", "pages", "preprocess", "format", *PREPROCESS_STEPS)
"""Every option a request may carry, besides the document itself."""

JSON_TYPES: dict[str, type] = {
    "lang": str,
    "psm": int,
    "oem": int,
    "dpi": int,
    "pages": str,
    "preprocess": str,
    "format": str,
    **dict.fromkeys(PREPROCESS_STEPS, bool),
}
"""The JSON type of each option in a JSON body (query and form values are all strings)."""

RawValue = str | int | float | bool | None
LanguageResolver = Callable[[str], str]
"""Checks a `+`-joined language spec against the installed traineddata and returns it normalised."""


def merge_option_sources(
    query_items: Iterable[tuple[str, str]], body_options: Mapping[str, RawValue]
) -> dict[str, RawValue]:
    """Query parameters and body options (form fields or JSON members) as one mapping.

    An option named twice, or both in the query and in the body, is ambiguous: 400 naming it.
    """
    raw: dict[str, RawValue] = {}
    for name, text in query_items:
        if name in raw:
            raise InvalidParameter(f"Option {name!r} is given more than once.", param=name)
        raw[name] = text
    for name, value in body_options.items():
        if name in raw:
            raise InvalidParameter(f"Option {name!r} is given both in the query and in the body.", param=name)
        raw[name] = value
    return raw


def parse_options(
    raw: Mapping[str, RawValue],
    settings: Settings,
    resolve_lang: LanguageResolver,
    *,
    default_format: OutputFormat = OutputFormat.JSON,
) -> OcrOptions:
    """Validate `raw` (option name -> value as the user wrote it) into `OcrOptions`.

    Missing options take the settings' defaults; unknown names are rejected, so a typo such
    as `langs=deu` fails loudly instead of being silently ignored. Values are taken exactly
    as written (no trimming, no empty-means-default), so what the OpenAPI document calls
    invalid is refused here too.
    """
    unknown = sorted(set(raw) - set(OPTION_NAMES))
    if unknown:
        raise InvalidParameter(
            f"Unknown option {unknown[0]!r}; known options are {', '.join(OPTION_NAMES)}.", param=unknown[0]
        )
    lang = parse_lang(raw.get("lang", settings.default_lang), resolve_lang)
    psm = parse_int("psm", raw.get("psm", settings.default_psm), *PSM_RANGE)
    if psm in UNSUPPORTED_PSM:
        raise InvalidParameter(
            f"psm {psm} does not recognise text (0 = orientation only, 2 is not implemented); use 1 or 3-13.",
            param="psm",
        )
    oem = parse_int("oem", raw.get("oem", settings.default_oem), *OEM_RANGE)
    dpi = parse_int("dpi", raw.get("dpi", settings.pdf_dpi), MIN_DPI, settings.max_dpi)
    pages = parse_pages(raw["pages"]) if "pages" in raw else None
    mode = parse_choice("preprocess", raw.get("preprocess", settings.default_preprocess), PREPROCESS_MODES)
    steps = {step: parse_bool(step, raw[step]) for step in PREPROCESS_STEPS if step in raw}
    output = parse_format(raw["format"]) if "format" in raw else default_format
    return OcrOptions(
        lang=lang,
        psm=psm,
        oem=oem,
        dpi=dpi,
        pages=pages,
        preprocess=PreprocessOptions(mode=mode, steps=steps),
        format=output,
    )


def check_json_types(raw: Mapping[str, RawValue]) -> None:
    """In a JSON body numbers are numbers and switches are booleans: `"psm": "6"` is refused."""
    for name, value in raw.items():
        expected = JSON_TYPES.get(name)
        if expected is None:
            continue  # unknown names are reported by parse_options
        if type(value) is not expected:
            kind = {str: "a string", int: "an integer", bool: "true or false"}[expected]
            raise InvalidParameter(f"In a JSON body, {name} must be {kind}; got {value!r}.", param=name)


def parse_lang(value: RawValue, resolve_lang: LanguageResolver) -> str:
    """`eng`, `eng+deu`, `chi-sim` (users type `-` for Tesseract's `_`), checked by the resolver.

    `?lang=eng+deu` typed into a URL arrives as `eng deu` (a query's `+` is a space), so a single
    space between codes counts as `+`; `%2B` is the escaped form.
    """
    text = _text("lang", value)
    if not LANG_PATTERN.fullmatch(text):
        raise InvalidParameter(
            f"lang must be codes joined by '+' (%2B in a URL), e.g. 'eng+deu'; got {text[:40]!r}.", param="lang"
        )
    return resolve_lang(text.replace(" ", "+").replace("-", "_"))


def parse_int(name: str, value: RawValue, low: int, high: int) -> int:
    if isinstance(value, bool | float) or value is None:
        raise InvalidParameter(f"{name} must be an integer from {low} to {high}; got {value!r}.", param=name)
    text = str(value)
    if not INTEGER_PATTERN.fullmatch(text):
        raise InvalidParameter(f"{name} must be an integer from {low} to {high}; got {text[:40]!r}.", param=name)
    number = int(text)
    if not low <= number <= high:
        raise InvalidParameter(f"{name} must be from {low} to {high}; got {number}.", param=name)
    return number


def parse_pages(value: RawValue) -> tuple[int, ...]:
    """`1-3,7` -> (1, 2, 3, 7), in the order asked, without duplicates (syntax: `documents.parse_pages`).

    Page numbers past `MAX_PAGE_NUMBER` are refused before expanding, so a short string cannot
    ask for millions of pages.
    """
    text = _text("pages", value)
    if len(text) > MAX_PAGE_SPEC_LENGTH:
        raise InvalidParameter(f"pages is longer than {MAX_PAGE_SPEC_LENGTH} characters.", param="pages")
    if not PAGES_PATTERN.fullmatch(text):
        raise InvalidParameter(f"pages must look like '1-3,7' (no spaces); got {text[:40]!r}.", param="pages")
    too_high = [number for number in re.findall(r"[0-9]+", text) if int(number) > MAX_PAGE_NUMBER]
    if too_high:
        raise InvalidParameter(f"pages: {too_high[0]} is past the last allowed page, {MAX_PAGE_NUMBER}.", param="pages")
    return documents.parse_pages(text)


def parse_choice(name: str, value: RawValue, choices: tuple[str, ...]) -> str:
    text = _text(name, value)
    if text not in choices:
        raise InvalidParameter(f"{name} must be one of {', '.join(choices)}; got {text[:40]!r}.", param=name)
    return text


def parse_format(value: RawValue) -> OutputFormat:
    return OutputFormat(parse_choice("format", value, tuple(OutputFormat)))


def parse_bool(name: str, value: RawValue) -> bool:
    """`true` or `false` (JSON booleans, or those two words in a query or form)."""
    if isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    raise InvalidParameter(f"{name} must be true or false; got {str(value)[:40]!r}.", param=name)


def _text(name: str, value: RawValue) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be a string; got {value!r}.", param=name)
    return value
