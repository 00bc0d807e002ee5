"""Readiness as a small registry of named checks, so each backend brings its own.

`/readyz` runs every registered check concurrently, each under a time limit, and answers 503
naming each failing check. The service registers the engine self-test and the configured
languages; the jobs work registers PostgreSQL/Redis checks with
`app.state.readiness_checks.add("postgresql", check)`. A check is an async callable that
returns None when healthy and raises (any exception, its message is the detail) otherwise.
Expensive checks are wrapped in `cached` so a probe every few seconds stays cheap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

ReadinessCheck = Callable[[], Awaitable[None]]

DEFAULT_CHECK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    duration_ms: float

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail, "duration_ms": round(self.duration_ms, 2)}


class ReadinessChecks:
    """Named checks, run together by `run_all`."""

    def __init__(self) -> None:
        self._checks: dict[str, tuple[ReadinessCheck, float]] = {}

    def add(self, name: str, check: ReadinessCheck, *, timeout: float = DEFAULT_CHECK_TIMEOUT_SECONDS) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = (check, timeout)

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def run_all(self) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._run(name, *entry) for name, entry in self._checks.items())))

    @staticmethod
    async def _run(name: str, check: ReadinessCheck, limit_seconds: float) -> CheckResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit_seconds):
                await check()
        except TimeoutError:
            return CheckResult(name, False, f"no answer within {limit_seconds:g} s", _ms_since(started))
        except Exception as exc:
            return CheckResult(name, False, str(exc) or type(exc).__name__, _ms_since(started))
        return CheckResult(name, True, "ok", _ms_since(started))


def cached(check: ReadinessCheck, seconds: float, clock: Callable[[], float] = time.monotonic) -> ReadinessCheck:
    """`check`, re-run at most every `seconds`; its last outcome (pass or failure) is replayed meanwhile.

    Concurrent probes share one run instead of starting several.
    """
    last_run: float | None = None
    last_error: Exception | None = None
    lock = asyncio.Lock()

    async def run_cached() -> None:
        nonlocal last_run, last_error
        async with lock:
            if last_run is None or clock() - last_run >= seconds:
                try:
                    await check()
                    last_error = None
                except Exception as exc:
                    last_error = exc
                last_run = clock()
        if last_error is not None:
            raise last_error

    return run_cached


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
