"""Result cache: the same recognition is never computed twice while its entry lives.

One interface (`ResultCache`), two homes: Redis when `OCR_REDIS_URL` is set (shared by every
replica, TTL per entry) or an in-memory LRU otherwise. Keys (`result_key`) cover everything
that changes a result: the document's sha256, the normalised options, the output format, and
the engine and language-data versions, so upgrading Tesseract or a traineddata file never
serves a stale answer. Entries larger than `cache_max_entry_bytes` are not stored.

The cache is an optimisation, never a dependency: when Redis is down every call degrades to a
miss (logged once per outage, counted in `ocr_cache_errors`), readiness is unaffected, and after
a short back-off the client simply tries again, so it recovers on its own.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ocr_service import metrics
from ocr_service.options import OcrOptions, OutputFormat
from ocr_service.settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "catalyst-ocr:v1:"


class ResultCache(Protocol):
    """Bytes by key. `get` and `put` never raise: failures count as misses.

    `enabled` is False only for the disabled cache, so callers can skip computing keys for it.
    """

    backend: str
    enabled: bool

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


def _tessdata_dir() -> Path | None:
    try:
        import tesserocr

        return Path(tesserocr.get_languages()[0])
    except (ImportError, RuntimeError):
        prefix = os.environ.get("TESSDATA_PREFIX")
        candidates = [Path(prefix)] if prefix else []
        candidates += sorted(Path("/usr/share/tesseract-ocr").glob("*/tessdata"), reverse=True)
        return next((c for c in candidates if c.is_dir()), None)


@functools.cache
def language_data_version(lang: str) -> str:
    """A fingerprint (size + mtime) of the traineddata files `lang` uses, plus OSD for orientation."""
    directory = _tessdata_dir()
    parts = []
    for code in [*lang.split("+"), "osd"]:
        path = directory / f"{code}.traineddata" if directory is not None else None
        try:
            stat = path.stat() if path is not None else None
        except OSError:
            stat = None
        parts.append(f"{code}:{stat.st_size}:{stat.st_mtime_ns}" if stat is not None else f"{code}:?")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:16]


def result_key(document_sha256: str, options: OcrOptions, variant: str, engine_version: str) -> str:
    """The cache key of one recognition; `variant` is the output format (or `page:N` for a job page)."""
    material = "|".join(
        (document_sha256, options.cache_key(), variant, engine_version, language_data_version(options.lang))
    )
    return KEY_PREFIX + hashlib.sha256(material.encode()).hexdigest()


def engine_version(engine_info: Mapping[str, str]) -> str:
    """Engine name and library versions (`pipeline.engine_info()`) as one key component."""
    return _engine_version(tuple(sorted(engine_info.items())))


@functools.lru_cache(maxsize=16)
def _engine_version(items: tuple[tuple[str, str], ...]) -> str:
    # The same few engine facts on every request: serialised once.
    return json.dumps(dict(items), sort_keys=True)


def mark_cached(body: bytes, fmt: OutputFormat, cached: bool) -> bytes:
    """A JSON result says whether it came from the cache (`"cached": true`); other formats are unchanged.

    The member is spliced in after the opening brace instead of re-serialising the document, so a
    large result costs one copy, not a parse and a dump on the event loop.
    """
    if fmt is not OutputFormat.JSON or not body.startswith(b"{"):
        return body
    flag = b'{"cached":true' if cached else b'{"cached":false'
    rest = body[1:]
    return flag + (rest if rest.lstrip().startswith(b"}") else b"," + rest)


async def document_digest(data: bytes, offload: Callable[[Callable[[], str]], Awaitable[str]]) -> str:
    """sha256 of a document; large ones are hashed by `offload` (the pipeline's bounded helper threads)
    so the event loop keeps serving."""
    if len(data) < 1 << 20:
        return hashlib.sha256(data).hexdigest()
    return await offload(lambda: hashlib.sha256(data).hexdigest())


class DisabledCache:
    """`OCR_CACHE_TTL_SECONDS=0`: every lookup misses and nothing is kept."""

    backend = "disabled"
    enabled = False

    async def get(self, key: str) -> bytes | None:
        return None

    async def put(self, key: str, value: bytes) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryCache:
    """A bounded LRU in this process, with the same TTL and per-entry bound as Redis."""

    backend = "memory"
    enabled = True

    def __init__(self, max_entries: int, max_entry_bytes: int, ttl_seconds: float) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_entries
        self._max_entry_bytes = max_entry_bytes
        self._ttl = ttl_seconds

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(key, None)
            metrics.CACHE_LOOKUPS.labels(result="miss").inc()
            return None
        self._entries.move_to_end(key)
        metrics.CACHE_LOOKUPS.labels(result="hit").inc()
        return entry[1]

    async def put(self, key: str, value: bytes) -> None:
        if len(value) > self._max_entry_bytes or self._max_entries <= 0:
            metrics.CACHE_SKIPPED.inc()
            return
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Redis with short socket time-outs and a back-off after a failure, so an outage costs no latency."""

    backend = "redis"
    enabled = True

    def __init__(self, url: str, max_entry_bytes: int, ttl_seconds: int, *, retry_after_seconds: float = 2.0) -> None:
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=1.0, health_check_interval=15, retry_on_timeout=False
        )
        self._max_entry_bytes = max_entry_bytes
        self._ttl = ttl_seconds
        self._retry_after = retry_after_seconds
        self._down_until = 0.0
        self._outage_logged = False

    def _skip(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, operation: str, exc: Exception) -> None:
        metrics.CACHE_ERRORS.labels(operation=operation).inc()
        self._down_until = time.monotonic() + self._retry_after
        if not self._outage_logged:
            log.warning("Redis cache unavailable, serving without it until it is back: %s", exc)
            self._outage_logged = True

    def _succeeded(self) -> None:
        if self._outage_logged:
            log.info("Redis cache is back")
            self._outage_logged = False

    async def get(self, key: str) -> bytes | None:
        if self._skip():
            metrics.CACHE_ERRORS.labels(operation="get").inc()
            metrics.CACHE_LOOKUPS.labels(result="miss").inc()
            return None
        try:
            value = await self._client.get(key)
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            metrics.CACHE_LOOKUPS.labels(result="miss").inc()
            return None
        self._succeeded()
        metrics.CACHE_LOOKUPS.labels(result="miss" if value is None else "hit").inc()
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode()

    async def put(self, key: str, value: bytes) -> None:
        if len(value) > self._max_entry_bytes:
            metrics.CACHE_SKIPPED.inc()
            return
        if self._skip():
            return
        try:
            await self._client.set(key, value, ex=self._ttl)
        except (RedisError, OSError) as exc:
            self._failed("put", exc)
            return
        self._succeeded()

    async def close(self) -> None:
        await self._client.aclose()


def build_cache(settings: Settings) -> ResultCache:
    """The cache the settings ask for: disabled (TTL 0), Redis (`OCR_REDIS_URL`) or in-memory."""
    if settings.cache_ttl_seconds <= 0:
        return DisabledCache()
    if settings.redis_url:
        return RedisCache(settings.redis_url, settings.cache_max_entry_bytes, settings.cache_ttl_seconds)
    return MemoryCache(settings.cache_max_entries, settings.cache_max_entry_bytes, settings.cache_ttl_seconds)
