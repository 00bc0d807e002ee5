"""Helpers for the jobs tests: small generated documents, the app in-process, polling a job,
reading server-sent events, and `catalyst-ocr serve` / job-worker child processes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageFont
from suite_support import (
    FIXED_PDF_DATES,
    running_app,  # noqa: F401 (re-exported for this area's tests)
)

from ocr_service.jobs.models import NewJob
from ocr_service.jobs.sqlstore import SqlJobStore
from ocr_service.options import OcrOptions, OutputFormat
from ocr_service.settings import Settings

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BIN = Path(sys.executable).parent
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
FINAL = ("succeeded", "failed", "cancelled")


def page_words(n: int) -> str:
    """Distinct, easy words for page `n` (1-based), so a misplaced page is caught."""
    return f"{WORDS[(n - 1) % 10].capitalize()} page {n}"


def text_image(text: str, size: int = 36, lines: int = 1) -> Image.Image:
    """`text` on `lines` lines, one below the other."""
    face: Any = ImageFont.truetype(FONT_PATH, size) if Path(FONT_PATH).exists() else ImageFont.load_default(size=size)
    width = int(face.getlength(text)) + 80
    line_height = size * 2 + 40
    image = Image.new("L", (width, line_height * lines), "white")
    for line in range(lines):
        ImageDraw.Draw(image).text((40, 30 + line * line_height), text, fill="black", font=face)
    return image


def png(text: str, lines: int = 1) -> bytes:
    buffer = io.BytesIO()
    text_image(text, lines=lines).save(buffer, format="PNG")
    return buffer.getvalue()


def pdf(pages: int, start: int = 1) -> bytes:
    """An image-only PDF (a scan without a text layer) with `page_words(n)` on page n."""
    images = [text_image(page_words(n)).convert("RGB") for n in range(start, start + pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=150.0, **FIXED_PDF_DATES)
    return buffer.getvalue()


def words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z0-9]+", text)]


def job_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Fast settings: fixed small pools, short leases, preprocessing off (the pages are clean)."""
    base: dict[str, object] = {
        "workers": 2,
        "job_workers": 2,
        "data_dir": str(tmp_path),
        "host": "127.0.0.1",
        "default_preprocess": "none",
        "job_lease_seconds": 3.0,
        "callback_allowed_hosts": ("127.0.0.1",),
        "callback_secret": "test-secret",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


async def wait_final(client: httpx.AsyncClient, job_id: str, within: float = 60) -> dict[str, Any]:
    """Poll until the job is final (bounded in time)."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in FINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {within}s"
        await asyncio.sleep(0.1)


def parse_sse(raw: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.split("\n\n"):
        kind, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if kind is not None and data is not None:
            events.append((kind, data))
    return events


@dataclass
class ChildProcess:
    """A child (`catalyst-ocr serve` or the job workers) whose stderr lines are collected."""

    process: subprocess.Popen[str]
    port: int = 0
    log_lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def child_env(env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "OMP_THREAD_LIMIT": "1", "OCR_LOG_FORMAT": "json", "OCR_LOG_LEVEL": "info", **env}


def start_child(argv: list[str], env: dict[str, str], ready: str, timeout: float = 60) -> ChildProcess:
    """Start a child and wait for a log line matching `ready` (its first group, if any, is the port)."""
    process = subprocess.Popen(argv, env=child_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    child = ChildProcess(process)
    seen = threading.Event()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            child.log_lines.append(line.rstrip("\n"))
            match = re.search(ready, line)
            if match and not seen.is_set():
                if match.groups():
                    child.port = int(match.group(1))
                seen.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not seen.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise RuntimeError(f"{argv} did not start:\n" + "\n".join(child.log_lines[-30:]))
    return child


def start_server(env: dict[str, str]) -> ChildProcess:
    return start_child(
        [str(BIN / "catalyst-ocr"), "serve", "--host", "127.0.0.1", "--port", "0"],
        env,
        r"running on http://127\.0\.0\.1:(\d+)",
    )


def start_workers(env: dict[str, str], *, wait: bool = True) -> ChildProcess:
    """A worker-only replica (its probes on a free port, `.port`); `wait=False` returns as soon as the
    process exists (it joins when ready)."""
    argv = [sys.executable, "-m", "ocr_service.jobs", "--host", "127.0.0.1", "--port", "0"]
    if wait:  # logged once the engines and the job workers run
        return start_child(argv, env, r"probes and metrics on http://127\.0\.0\.1:(\d+)")
    return ChildProcess(
        subprocess.Popen(argv, env=child_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    )


@contextlib.contextmanager
def children() -> Iterator[list[ChildProcess]]:
    """Collects children started in the block and kills any left at the end."""
    started: list[ChildProcess] = []
    try:
        yield started
    finally:
        for child in started:
            child.kill()


async def wait_until(what: str, predicate: Callable[[], bool], within: float = 30) -> None:
    """Wait (bounded) until `predicate()` holds; fail naming `what` otherwise."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {within}s"
        await asyncio.sleep(0.05)


STORE_DOC = b"%PDF-1.4 not really a pdf, the store never looks inside"
"""A document for store-level tests: the store keeps bytes and never looks inside them."""


def new_job(pages: int = 2, key: str | None = None, document: bytes = STORE_DOC, **kw: Any) -> NewJob:
    """A store-level submission of `pages` pages (text output), with an optional Idempotency-Key."""
    return NewJob(
        document=document,
        options=OcrOptions(lang="eng", format=OutputFormat.TEXT),
        page_numbers=tuple(range(1, pages + 1)),
        filename="doc.pdf",
        idempotency_key=key,
        **kw,
    )


async def finals(store: SqlJobStore, job_id: str) -> list[str]:
    """The final events a job has: exactly one once it is finished."""
    events = await store.events_since(job_id, 0, 1000)
    return [e.kind for e in events if e.kind in FINAL]


SECRET = "test-secret"
"""The callback secret of `job_settings`, which `Receiver` verifies signatures with."""


@dataclass
class Receiver:
    """Answers 500 to the first `failures` deliveries, then 204; records every delivery."""

    failures: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"
