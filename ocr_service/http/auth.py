"""Optional API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`.

With no key configured (neither `OCR_API_KEYS` nor `OCR_API_KEYS_FILE`) everything is open.
Otherwise every route except the probes, metrics and the API description needs a key.
Keys from the file are re-read every few seconds, so a rotated Kubernetes Secret applies
without a restart. Comparison is constant-time, and keys never reach a log line.

An accepted request carries its key's owner id (`key_owner`) in `scope["state"]`, so the jobs
API can keep each key's jobs to itself (`caller_owner`); the key itself goes no further.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ocr_service.contract import HEALTH_PATH, LIVENESS_PATH, METRICS_PATH, READINESS_PATH
from ocr_service.errors import ServiceUnavailable, Unauthorized
from ocr_service.http.problems import problem_response
from ocr_service.settings import Settings, SettingsError

OPEN_PATHS = frozenset({LIVENESS_PATH, READINESS_PATH, HEALTH_PATH, METRICS_PATH, "/openapi.json"})
OPEN_PREFIXES = ("/docs", "/demo")
"""Probes must work for the kubelet and Prometheus without a key; the API description is public, and so
is the demo page's HTML (it must load to ask for a key; its API calls carry one)."""

KEY_CACHE_SECONDS = 5.0
WWW_AUTHENTICATE = 'Bearer realm="catalyst-ocr"'

OWNER_STATE_KEY = "api_key_owner"
"""Where `ApiKeyMiddleware` puts the caller's `key_owner` in `scope["state"]` (Starlette's `request.state`)."""
_OWNER_LABEL = b"catalyst-ocr/job-owner/v1"

logger = logging.getLogger("catalyst_ocr.auth")


def key_owner(key: str) -> str:
    """The opaque, stable id of whoever holds `key`: 128 bits of an HMAC-SHA256 of the key.

    Stored with each job instead of the key, so a database dump reveals no key (a long random
    key cannot be recovered from it). A rotated key is a different owner by design: the
    service cannot tell a new key from a new client.
    """
    return hmac.new(_OWNER_LABEL, key.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def caller_owner(scope: Mapping[str, Any]) -> str | None:
    """The owner id `ApiKeyMiddleware` recorded for this request; None when no key was checked."""
    state = scope.get("state")
    owner = state.get(OWNER_STATE_KEY) if isinstance(state, Mapping) else None
    return owner if isinstance(owner, str) else None


class ApiKeyStore:
    """The currently valid keys, re-read from settings at most every `cache_seconds`."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._cache_seconds = KEY_CACHE_SECONDS if cache_seconds is None else cache_seconds
        self._clock = clock
        self._keys: frozenset[bytes] = frozenset()
        self._loaded_at: float | None = None

    @property
    def configured(self) -> bool:
        """Whether authentication is on at all (decided by settings, not by the file's content)."""
        return bool(self._settings.api_keys or self._settings.api_keys_file)

    def keys(self) -> frozenset[bytes]:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._cache_seconds:
            self._keys = frozenset(key.encode("utf-8") for key in self._settings.all_api_keys())
            self._loaded_at = now
        return self._keys

    def accepts(self, candidate: str) -> bool:
        """Constant-time check of `candidate` against every key (no early exit on a match)."""
        given = candidate.encode("utf-8")
        matched = False
        for key in self.keys():
            matched |= hmac.compare_digest(given, key)
        return matched


def presented_key(headers: Headers) -> str | None:
    """The key the client sent, from `Authorization: Bearer` first, else `X-API-Key`."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


class ApiKeyMiddleware:
    """Rejects requests without a valid key with a 401 problem and `WWW-Authenticate`."""

    def __init__(self, app: ASGIApp, store: ApiKeyStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.store.configured or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            key = presented_key(Headers(scope=scope))
            allowed = key is not None and self.store.accepts(key)
        except SettingsError as exc:
            # Fail closed: an unreadable key file must not open the service.
            logger.error("API keys cannot be loaded: %s", exc)
            response = problem_response(ServiceUnavailable("API keys cannot be loaded; see the server log."))
            await response(scope, receive, send)
            return
        if allowed:
            assert key is not None
            scope.setdefault("state", {})[OWNER_STATE_KEY] = key_owner(key)
            await self.app(scope, receive, send)
            return
        reason = "No API key was sent" if key is None else "The API key is not valid"
        error = Unauthorized(
            f"{reason}; send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE},
        )
        await problem_response(error, scope["path"])(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or any(path == prefix or path.startswith(prefix + "/") for prefix in OPEN_PREFIXES)
