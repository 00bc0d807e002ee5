"""Helpers for the service tests: documents rendered from known text, the app in-process, and a real server.

Images are drawn with DejaVu Sans (installed by `scripts/install-system-deps.sh --dev`) at
sizes Tesseract reads reliably, so tests can compare recognised words with the text drawn.
"""

from __future__ import annotations

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from suite_support import (
    FIXED_PDF_DATES,
    running_app,  # noqa: F401 (re-exported for this area's tests)
)

from ocr_service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALYST_OCR = Path(sys.executable).parent / "catalyst-ocr"
FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

LINE_ONE = "Invoice number 4711 paid"
LINE_TWO = "Coffee beans delivered Monday"


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if Path(FONT_PATH).exists():
        return ImageFont.truetype(FONT_PATH, size)
    return ImageFont.load_default(size=size)


def text_image(lines: list[str], *, size: int = 40, mode: str = "L") -> Image.Image:
    """Black text on white, one line per entry, with a margin Tesseract likes."""
    face = font(size)
    width = max(int(face.getlength(line)) for line in lines) + 80
    height = len(lines) * int(size * 1.6) + 80
    image = Image.new(mode, (width, height), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((40, 40 + index * int(size * 1.6)), line, fill="black", font=face)
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png(lines: list[str] | None = None, **kwargs: object) -> bytes:
    return encode(text_image(lines or [LINE_ONE], **kwargs), "PNG")  # type: ignore[arg-type]


def multipage(fmt: str, pages: list[list[str]]) -> bytes:
    """A multi-page TIFF or PDF (Pillow writes image-only PDFs: a scan without a text layer)."""
    images = [text_image(lines, mode="RGB" if fmt == "PDF" else "L") for lines in pages]
    params: dict[str, object] = {"save_all": True, "append_images": images[1:]}
    if fmt == "PDF":
        params.update(resolution=150.0, **FIXED_PDF_DATES)
    return encode(images[0], fmt, **params)


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", text)


def has_words(recognised: str, expected: str) -> bool:
    """Every word of `expected` appears in `recognised`, in order (tolerant of layout whitespace)."""
    got = [w.lower() for w in words(recognised)]
    position = 0
    for word in (w.lower() for w in words(expected)):
        try:
            position = got.index(word, position) + 1
        except ValueError:
            return False
    return True


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {"workers": 2, "data_dir": str(tmp_path), "host": "127.0.0.1"}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for line in exposition.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        metric, _, label_text = sample.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', label_text))
        if all(found.get(key) == want for key, want in labels.items()):
            return float(value)
    return 0.0


@dataclass
class ServerProcess:
    """A `catalyst-ocr serve` child process on a free loopback port; its log lines are collected."""

    process: subprocess.Popen[str]
    port: int = 0
    log_lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json_logs(self) -> list[dict[str, object]]:
        entries = []
        for line in list(self.log_lines):
            with contextlib.suppress(json.JSONDecodeError):
                entries.append(json.loads(line))
        return entries

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


@contextlib.contextmanager
def serve_process(env: dict[str, str], *, start_timeout: float = 60.0) -> Iterator[ServerProcess]:
    """Start `catalyst-ocr serve --port 0`, learn the port from its start-up log line, stop it afterwards."""
    full_env = {**os.environ, "OMP_THREAD_LIMIT": "1", "OCR_LOG_FORMAT": "json", **env}
    process = subprocess.Popen(
        [str(CATALYST_OCR), "serve", "--host", "127.0.0.1", "--port", "0"],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = ServerProcess(process)
    port_found = threading.Event()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            server.log_lines.append(line.rstrip("\n"))
            match = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                server.port = int(match.group(1))
                port_found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not port_found.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("catalyst-ocr serve did not start:\n" + "\n".join(server.log_lines[-30:]))
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=5)
