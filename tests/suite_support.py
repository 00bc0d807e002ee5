"""Helpers more than one test area uses (importable because `tests/` holds the root conftest)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from ocr_service.app import build_app
from ocr_service.settings import Settings

FIXED_PDF_DATES = {"creationDate": time.gmtime(1_700_000_000), "modDate": time.gmtime(1_700_000_000)}
"""For Pillow's PDF writer, which otherwise stamps the current second: the same pages written a
second apart would differ, so idempotency and cache tests would see two documents."""


def free_port() -> int:
    """A loopback port nobody listens on right now (for servers that cannot be told port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan (pipeline, jobs) started and closed, behind an in-process client."""
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test", timeout=60) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def run_benchmark(repo_root: Path, script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `benchmarks/<script>` as a user would (from the repo root, one OpenMP thread) and return
    what it printed; fails the test with its output when it exits non-zero."""
    completed = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / script), *args],
        cwd=repo_root,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, f"{completed.stdout}\n{completed.stderr[-3000:]}"
    return completed
