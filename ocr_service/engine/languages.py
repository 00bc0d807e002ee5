"""Which Tesseract languages are installed, and turning a user's `lang` into a valid one.

Users type `chi-sim` or `eng+DEU`; Tesseract wants `chi_sim` and `eng+deu`. `resolve_lang`
normalises and validates every part so that an unknown language is a precise 400 naming the
`lang` parameter instead of a Tesseract init failure deep in a worker. `osd` (orientation and
script detection) is installed but is not a recognition language, so it is never listed.
The list is read once per process (installing a language pack means restarting the service).
"""

from __future__ import annotations

import functools
import re

from ocr_service.errors import UnknownLanguage

_NOT_RECOGNITION_LANGUAGES = frozenset({"osd", "equ"})
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


@functools.cache
def tessdata_languages() -> tuple[str, ...]:
    """Every traineddata Tesseract can load, from tesserocr when present, else from the CLI."""
    try:
        import tesserocr

        _, languages = tesserocr.get_languages()
    except ImportError:
        import pytesseract

        languages = pytesseract.get_languages(config="")
    return tuple(sorted(str(language) for language in languages))


def installed_languages() -> list[str]:
    """Installed recognition languages, sorted, without `osd`."""
    return sorted(_recognition_languages())


@functools.cache
def _recognition_languages() -> frozenset[str]:
    """The installed recognition languages as a set, built once: every request's `lang` is checked against it."""
    return frozenset(lang for lang in tessdata_languages() if lang not in _NOT_RECOGNITION_LANGUAGES)


def resolve_lang(raw: str, available: list[str] | None = None) -> str:
    """Normalise `raw` (`-` -> `_`, lower case, `+` separated) and check every part is installed."""
    installed = _recognition_languages() if available is None else frozenset(available)
    parts = [part.strip().lower().replace("-", "_") for part in raw.split("+")]
    if not raw.strip() or any(not part for part in parts):
        raise UnknownLanguage(
            f"lang {raw!r} is empty or has an empty part; use codes like eng or eng+deu", param="lang"
        )
    unknown = [part for part in parts if not _CODE.match(part) or part not in installed]
    if unknown:
        raise UnknownLanguage(
            f"language(s) not installed: {', '.join(unknown)}; installed: {', '.join(sorted(installed))}",
            param="lang",
        )
    return "+".join(dict.fromkeys(parts))
