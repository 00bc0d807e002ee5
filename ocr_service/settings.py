"""Settings, read once from `OCR_*` environment variables.

`Settings.from_env()` is called once at start-up (by the CLI or `build_app`) and the value is
passed down; nothing below this module reads the environment. `SETTINGS_TABLE` is the single
documented list: the README table and `.env.example` are checked against it by the tests.
Standard library only (and `options`, which is too), so the operator can import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ocr_service.contract import HTTP_PORT, EnvVar
from ocr_service.options import OEM_RANGE, PSM_RANGE, UNSUPPORTED_PSM


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable."""


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its field name, variable, default (as the env string) and meaning."""

    field: str
    env: EnvVar
    default: str
    doc: str


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "catalyst-ocr")


SETTINGS_TABLE: tuple[SettingSpec, ...] = (
    SettingSpec(
        "host",
        EnvVar.HOST,
        "127.0.0.1",
        "Address to listen on; the images, compose and the operator set `0.0.0.0` (every interface).",
    ),
    SettingSpec("port", EnvVar.PORT, str(HTTP_PORT), "Port to listen on."),
    SettingSpec(
        "workers", EnvVar.WORKERS, "0", "Parallel recognitions; 0 = one per CPU the process may use (cgroup-aware)."
    ),
    SettingSpec(
        "queue_size",
        EnvVar.QUEUE_SIZE,
        "0",
        "Pages that may wait for a worker before requests get 429; 0 = 4 per worker.",
    ),
    SettingSpec(
        "helper_threads",
        EnvVar.HELPER_THREADS,
        "0",
        "Threads that open documents, merge results and hash uploads beside the workers; 0 = one per worker"
        " (at least 2).",
    ),
    SettingSpec(
        "helper_queue_size",
        EnvVar.HELPER_QUEUE_SIZE,
        "0",
        "Calls that may wait for a helper thread before requests get 429; 0 = the worker pool's slots"
        " (workers + queue).",
    ),
    SettingSpec(
        "engine",
        EnvVar.ENGINE,
        "auto",
        "`capi` (warm in-process, libtesseract's C API), `tesserocr` (warm in-process binding, holds the GIL"
        " for ALTO/PDF), `pytesseract` (CLI per call) or `auto` (the first of these that works).",
    ),
    SettingSpec(
        "page_parallelism",
        EnvVar.PAGE_PARALLELISM,
        "auto",
        "Workers one large page may be recognised on at once when they are idle: `auto` (all), `off`, or a"
        " number; only the `capi` engine, `psm` 3 and any output but PDF.",
    ),
    SettingSpec(
        "timeout_seconds",
        EnvVar.TIMEOUT_SECONDS,
        "60",
        "Time limit of one synchronous request; past it the answer is 504 and the work stops.",
    ),
    SettingSpec(
        "body_timeout_seconds",
        EnvVar.BODY_TIMEOUT_SECONDS,
        "10",
        "Time limit of a request body, extended by what arrives (never past `OCR_TIMEOUT_SECONDS`); 408 past it.",
    ),
    SettingSpec(
        "min_upload_bytes_per_second",
        EnvVar.MIN_UPLOAD_BYTES_PER_SECOND,
        "65536",
        "Upload rate a body must keep: each this many bytes received add 1 s to its time limit (408 past it).",
    ),
    SettingSpec(
        "max_header_bytes",
        EnvVar.MAX_HEADER_BYTES,
        "65536",
        "Largest request line plus headers (431, or 414 for the URL alone, past it).",
    ),
    SettingSpec(
        "header_timeout_seconds",
        EnvVar.HEADER_TIMEOUT_SECONDS,
        "10",
        "Time limit of a request line and headers from the connection or its first byte (408 past it).",
    ),
    SettingSpec(
        "max_upload_bytes",
        EnvVar.MAX_UPLOAD_BYTES,
        str(25 * 1024 * 1024),
        "Largest accepted request body (413 past it).",
    ),
    SettingSpec(
        "max_pixels",
        EnvVar.MAX_PIXELS,
        str(40_000_000),
        "Largest page in pixels, checked before decoding (413 past it).",
    ),
    SettingSpec("max_pages", EnvVar.MAX_PAGES, "50", "Most pages in one document (413 past it)."),
    SettingSpec("pdf_dpi", EnvVar.PDF_DPI, "300", "Default resolution PDF pages are rasterised at."),
    SettingSpec("max_dpi", EnvVar.MAX_DPI, "600", "Highest `dpi` a request may ask for."),
    SettingSpec(
        "default_lang",
        EnvVar.DEFAULT_LANG,
        "eng",
        "Language(s) used when a request names none, e.g. `eng+deu`; not ready unless installed.",
    ),
    SettingSpec("default_psm", EnvVar.DEFAULT_PSM, "3", "Default Tesseract page segmentation mode."),
    SettingSpec("default_oem", EnvVar.DEFAULT_OEM, "1", "Default Tesseract engine mode (1 = LSTM)."),
    SettingSpec("default_preprocess", EnvVar.DEFAULT_PREPROCESS, "auto", "Default preprocessing: `auto` or `none`."),
    SettingSpec(
        "languages", EnvVar.LANGUAGES, "eng", "Languages that must be installed for readiness, `+` or `,` separated."
    ),
    SettingSpec("api_keys", EnvVar.API_KEYS, "", "Comma-separated API keys; empty (and no file) = no authentication."),
    SettingSpec("api_keys_file", EnvVar.API_KEYS_FILE, "", "File with one API key per line (e.g. a mounted Secret)."),
    SettingSpec(
        "data_dir",
        EnvVar.DATA_DIR,
        "",
        "Where the service keeps data on disk (SQLite job store); default `$XDG_DATA_HOME/catalyst-ocr`.",
    ),
    SettingSpec(
        "database_url", EnvVar.DATABASE_URL, "", "PostgreSQL URL for jobs; empty = embedded SQLite under the data dir."
    ),
    SettingSpec("redis_url", EnvVar.REDIS_URL, "", "Redis URL for the result cache; empty = in-memory LRU."),
    SettingSpec("log_level", EnvVar.LOG_LEVEL, "info", "`debug`, `info`, `warning` or `error`."),
    SettingSpec("log_format", EnvVar.LOG_FORMAT, "json", "`json` (one object per line) or `text`."),
    SettingSpec(
        "shutdown_grace_seconds", EnvVar.SHUTDOWN_GRACE_SECONDS, "30", "On SIGTERM, how long in-flight work may finish."
    ),
    SettingSpec(
        "cache_ttl_seconds", EnvVar.CACHE_TTL_SECONDS, "86400", "How long a cached result lives; 0 disables the cache."
    ),
    SettingSpec("cache_max_entries", EnvVar.CACHE_MAX_ENTRIES, "1000", "Entries kept by the in-memory cache."),
    SettingSpec(
        "cache_max_entry_bytes",
        EnvVar.CACHE_MAX_ENTRY_BYTES,
        str(4 * 1024 * 1024),
        "Largest result stored in the cache.",
    ),
    SettingSpec(
        "job_workers", EnvVar.JOB_WORKERS, "0", "Job pages recognised at once by this replica; 0 = same as workers."
    ),
    SettingSpec(
        "job_workers_enabled",
        EnvVar.JOB_WORKERS_ENABLED,
        "true",
        "`false`: this replica recognises no job pages (separate job workers do, e.g. the operator's `jobWorkers`).",
    ),
    SettingSpec("job_ttl_seconds", EnvVar.JOB_TTL_SECONDS, str(7 * 86400), "How long job inputs and results are kept."),
    SettingSpec("job_max_attempts", EnvVar.JOB_MAX_ATTEMPTS, "3", "Attempts per page before its job fails."),
    SettingSpec(
        "job_lease_seconds",
        EnvVar.JOB_LEASE_SECONDS,
        "30",
        "Lease on a claimed page; renewed by heartbeats, reclaimed when it expires.",
    ),
    SettingSpec(
        "job_max_pages",
        EnvVar.JOB_MAX_PAGES,
        "2000",
        "Most pages one job recognises (413 past it); `pages` selects first.",
    ),
    SettingSpec(
        "job_max_upload_bytes",
        EnvVar.JOB_MAX_UPLOAD_BYTES,
        str(100 * 1024 * 1024),
        "Largest document a job accepts (413 past it); held in memory while it uploads.",
    ),
    SettingSpec("callback_secret", EnvVar.CALLBACK_SECRET, "", "HMAC-SHA256 key that signs job callbacks."),
    SettingSpec(
        "callback_allowed_hosts",
        EnvVar.CALLBACK_ALLOWED_HOSTS,
        "",
        "Comma-separated hosts callbacks may reach; empty = callbacks refused.",
    ),
)

_LOG_LEVELS = ("debug", "info", "warning", "error")


def _int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(name: str, raw: str, minimum: float = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value <= minimum:
        raise SettingsError(f"{name} must be > {minimum}, got {value}")
    return value


def _psm(name: str, raw: str) -> int:
    """A default every request without `psm` uses: one that recognises nothing would fail them all."""
    value = _int(name, raw)
    if not PSM_RANGE[0] <= value <= PSM_RANGE[1] or value in UNSUPPORTED_PSM:
        raise SettingsError(
            f"{name} must be 1 or 3-13 (0 only detects orientation, 2 is not implemented by Tesseract); got {value}"
        )
    return value


def _oem(name: str, raw: str) -> int:
    value = _int(name, raw)
    if not OEM_RANGE[0] <= value <= OEM_RANGE[1]:
        raise SettingsError(f"{name} must be from {OEM_RANGE[0]} to {OEM_RANGE[1]}; got {value}")
    return value


def _parallelism(name: str, raw: str) -> int:
    value = raw.strip().lower()
    if value == "auto":
        return 0
    if value == "off":
        return 1
    try:
        return _int(name, value, 1)
    except SettingsError:
        raise SettingsError(f"{name} must be auto, off or a number of workers >= 1; got {raw!r}") from None


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    return value == "true"


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
    return value


def _list(raw: str, separators: str = ",") -> tuple[str, ...]:
    for sep in separators[1:]:
        raw = raw.replace(sep, separators[0])
    return tuple(item.strip() for item in raw.split(separators[0]) if item.strip())


@dataclass(frozen=True)
class Settings:
    """Every knob of the service, typed and validated. Build with `from_env` or directly in tests."""

    host: str = "127.0.0.1"
    port: int = HTTP_PORT
    workers: int = 0
    queue_size: int = 0
    helper_threads: int = 0
    helper_queue_size: int = 0
    engine: str = "auto"
    page_parallelism: int = 0
    """Workers one page may use: 0 = all (`auto`), 1 = one (`off`)."""
    timeout_seconds: float = 60.0
    body_timeout_seconds: float = 10.0
    min_upload_bytes_per_second: int = 65536
    max_header_bytes: int = 65536
    header_timeout_seconds: float = 10.0
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_pages: int = 50
    pdf_dpi: int = 300
    max_dpi: int = 600
    default_lang: str = "eng"
    default_psm: int = 3
    default_oem: int = 1
    default_preprocess: str = "auto"
    languages: tuple[str, ...] = ("eng",)
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    api_keys_file: str = ""
    data_dir: str = field(default_factory=_default_data_dir)
    database_url: str = field(default="", repr=False)
    redis_url: str = field(default="", repr=False)
    log_level: str = "info"
    log_format: str = "json"
    shutdown_grace_seconds: float = 30.0
    cache_ttl_seconds: int = 86400
    cache_max_entries: int = 1000
    cache_max_entry_bytes: int = 4 * 1024 * 1024
    job_workers: int = 0
    job_workers_enabled: bool = True
    job_ttl_seconds: int = 7 * 86400
    job_max_attempts: int = 3
    job_lease_seconds: float = 30.0
    job_max_pages: int = 2000
    job_max_upload_bytes: int = 100 * 1024 * 1024
    callback_secret: str = field(default="", repr=False)
    callback_allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every `OCR_*` variable; raise `SettingsError` naming a bad one."""
        env = os.environ if environ is None else environ
        raw = {spec.field: env.get(spec.env, spec.default) for spec in SETTINGS_TABLE}
        parsers: dict[str, Callable[[str, str], Any]] = {
            "host": lambda n, v: v.strip() or "127.0.0.1",
            "port": lambda n, v: _int(n, v, 1),
            "workers": _int,
            "queue_size": _int,
            "helper_threads": _int,
            "helper_queue_size": _int,
            "engine": lambda n, v: _choice(n, v, ("auto", "capi", "tesserocr", "pytesseract")),
            "page_parallelism": _parallelism,
            "timeout_seconds": _float,
            "body_timeout_seconds": _float,
            "min_upload_bytes_per_second": lambda n, v: _int(n, v, 1),
            "max_header_bytes": lambda n, v: _int(n, v, 1024),
            "header_timeout_seconds": _float,
            "max_upload_bytes": lambda n, v: _int(n, v, 1),
            "max_pixels": lambda n, v: _int(n, v, 1),
            "max_pages": lambda n, v: _int(n, v, 1),
            "pdf_dpi": lambda n, v: _int(n, v, 36),
            "max_dpi": lambda n, v: _int(n, v, 36),
            "default_lang": lambda n, v: v.strip() or "eng",
            "default_psm": _psm,
            "default_oem": _oem,
            "default_preprocess": lambda n, v: _choice(n, v, ("auto", "none")),
            "languages": lambda n, v: _list(v, ",+ ") or ("eng",),
            "api_keys": lambda n, v: _list(v),
            "api_keys_file": lambda n, v: v.strip(),
            "data_dir": lambda n, v: v.strip() or _default_data_dir(),
            "database_url": lambda n, v: v.strip(),
            "redis_url": lambda n, v: v.strip(),
            "log_level": lambda n, v: _choice(n, v, _LOG_LEVELS),
            "log_format": lambda n, v: _choice(n, v, ("json", "text")),
            "shutdown_grace_seconds": _float,
            "cache_ttl_seconds": _int,
            "cache_max_entries": _int,
            "cache_max_entry_bytes": _int,
            "job_workers": _int,
            "job_workers_enabled": _bool,
            "job_ttl_seconds": lambda n, v: _int(n, v, 1),
            "job_max_attempts": lambda n, v: _int(n, v, 1),
            "job_lease_seconds": _float,
            "job_max_pages": lambda n, v: _int(n, v, 1),
            "job_max_upload_bytes": lambda n, v: _int(n, v, 1),
            "callback_secret": lambda n, v: v,
            "callback_allowed_hosts": lambda n, v: tuple(h.lower() for h in _list(v)),
        }
        specs = {spec.field: spec for spec in SETTINGS_TABLE}
        values = {name: parsers[name](specs[name].env, value) for name, value in raw.items()}
        settings = cls(**values)
        if settings.pdf_dpi > settings.max_dpi:
            raise SettingsError(
                f"{EnvVar.PDF_DPI} ({settings.pdf_dpi}) must not exceed {EnvVar.MAX_DPI} ({settings.max_dpi})"
            )
        return settings

    def all_api_keys(self) -> frozenset[str]:
        """Keys from `OCR_API_KEYS` plus those in `OCR_API_KEYS_FILE`.

        The file is re-read on each call, so a rotated Secret applies without a restart.
        """
        keys = set(self.api_keys)
        if self.api_keys_file:
            try:
                text = Path(self.api_keys_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(
                    f"{EnvVar.API_KEYS_FILE}: cannot read {self.api_keys_file}: {exc.strerror}"
                ) from None
            keys.update(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
        return frozenset(keys)


def _check_table() -> None:
    names = {f.name for f in fields(Settings)}
    table = {spec.field for spec in SETTINGS_TABLE}
    envs = {spec.env for spec in SETTINGS_TABLE}
    if names != table or envs != set(EnvVar):
        raise RuntimeError("SETTINGS_TABLE, Settings and contract.EnvVar disagree")


_check_table()
