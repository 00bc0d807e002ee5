"""Choosing the engine for `Settings.engine` (`auto`, `capi`, `tesserocr`, `pytesseract`), and version facts.

`auto` takes `capi` (libtesseract's C API through ctypes, `engine/capi_engine.py`) when
libtesseract loads and initialises a model from the system tessdata, then tesserocr under the
same check, else the CLI. `capi` before tesserocr because no call of it holds the GIL: with
tesserocr an ALTO/PDF render (its `ProcessPages`) stops every other thread for the whole page
(a ticking thread saw a 2.5-3.5 s gap on a dense page; with `capi` at most 5 ms, at the same
recognition time), and it needs no compiled binding, only the libtesseract the CLI uses.

Why an in-process engine, by the numbers of `benchmarks/engines.py` (2 cores, Tesseract 5.3.0, a machine
shared with other work, load average ~7):

| workload     | p50 tesserocr | p50 CLI  | throughput tesserocr / CLI (2 threads) |
|--------------|---------------|----------|----------------------------------------|
| receipt line | 38 ms         | 235 ms   | 24.6 / 4.0 img/s = 6.1x                |
| A4, 300 DPI  | 3.48 s        | 3.63 s   | 0.38 / 0.33 img/s = 1.14x              |

The CLI pays process start-up and model loading (~200 ms) on every page: that dominates small
images and is noise on full pages, where recognition itself dominates. Never slower, often
several times faster, so a warm in-process engine is the default whenever one works (the table's
tesserocr figures hold for `capi`, which makes the same libtesseract calls).
"""

from __future__ import annotations

import functools
import logging
import re
import subprocess

from ocr_service.engine.base import EngineBackend
from ocr_service.engine.cli_engine import PytesseractBackend, tesseract_command
from ocr_service.engine.languages import installed_languages

log = logging.getLogger(__name__)


class EngineUnavailableError(RuntimeError):
    """The configured engine cannot run here (the message says why)."""


def load_backend(choice: str) -> EngineBackend:
    """The backend for `choice`; `EngineUnavailableError` when an explicitly chosen one cannot run."""
    if choice == "pytesseract":
        try:
            return PytesseractBackend()
        except Exception as exc:
            raise EngineUnavailableError(f"pytesseract engine: {exc}") from exc
    if choice == "capi":
        return _capi_backend()
    if choice == "tesserocr":
        return _tesserocr_backend()
    if choice != "auto":
        raise EngineUnavailableError(f"unknown engine {choice!r}; use auto, capi, tesserocr or pytesseract")
    failures: list[str] = []
    for candidate in (_capi_backend, _tesserocr_backend):
        try:
            return candidate()
        except EngineUnavailableError as exc:
            failures.append(str(exc))
    log.warning("falling back to the pytesseract engine: %s", "; ".join(failures))
    try:
        return PytesseractBackend()
    except Exception as cli_exc:
        raise EngineUnavailableError(f"no engine works: {'; '.join(failures)}; pytesseract: {cli_exc}") from cli_exc


def _default_lang() -> str:
    languages = installed_languages()
    return "eng" if "eng" in languages else (languages[0] if languages else "")


def _capi_backend() -> EngineBackend:
    from ocr_service.engine.capi_engine import CapiBackend, CapiUnavailableError

    try:
        backend = CapiBackend()
        backend.check(_default_lang())
    except (CapiUnavailableError, AttributeError) as exc:  # AttributeError: a libtesseract without the C API
        raise EngineUnavailableError(f"capi engine: {exc}") from exc
    return backend


def _tesserocr_backend() -> EngineBackend:
    try:
        import tesserocr

        from ocr_service.engine.tesserocr_engine import TesserocrBackend
    except ImportError as exc:
        raise EngineUnavailableError(f"tesserocr is not installed ({exc})") from exc
    lang = _default_lang()
    try:
        api = tesserocr.PyTessBaseAPI(lang=lang)
        api.End()
    except RuntimeError as exc:
        raise EngineUnavailableError(f"tesserocr cannot load {lang!r} from the system tessdata: {exc}") from exc
    return TesserocrBackend()


@functools.cache
def library_versions() -> dict[str, str]:
    """Tesseract and Leptonica versions, from tesserocr when present, else `tesseract --version`."""
    try:
        import tesserocr

        banner = str(tesserocr.tesseract_version())
    except ImportError:
        completed = subprocess.run([tesseract_command(), "--version"], capture_output=True, text=True, timeout=30)
        banner = completed.stdout + completed.stderr
    tesseract = re.search(r"tesseract\s+v?([\w.\-]+)", banner)
    leptonica = re.search(r"leptonica-([\w.\-]+)", banner)
    return {
        "tesseract": tesseract.group(1) if tesseract else "unknown",
        "leptonica": leptonica.group(1) if leptonica else "unknown",
    }
