"""Atheris fuzz targets over hostile input: document sniffing/page counting/decoding and body parsing.

Each target takes arbitrary bytes and must end in one of two ways: normally, or with an
`OcrError` whose status is 4xx (what the HTTP layer turns into a precise problem). Anything else
(an IndexError from a parser, a RecursionError, a 500) is a crash: atheris stops, and the input is
written to `tests/fuzz/reproducers/<target>/`, where `test_fuzz.py` replays it for ever after.

Run one for a bounded time (what `test_fuzz.py` does, 20 s per target by default):

    .venv/bin/python tests/fuzz/fuzz_targets.py documents -max_total_time=20
    .venv/bin/python tests/fuzz/fuzz_targets.py bodies -max_total_time=20
"""

from __future__ import annotations

import asyncio
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["ocr_service", "starlette", "multipart", "python_multipart"]):
    from starlette.requests import Request

    from ocr_service.documents import open_document
    from ocr_service.errors import OcrError
    from ocr_service.http.body import read_document
    from ocr_service.settings import Settings

HERE = Path(__file__).resolve().parent
REPRODUCERS = HERE / "reproducers"
SETTINGS = Settings(max_pixels=1_000_000, max_pages=5, max_upload_bytes=1 << 20)
"""Small limits, so an input that claims a huge page or many pages is refused cheaply (4xx)."""
BOUNDARY = "fuzzboundary"
BODY_STYLES = (
    "application/json",
    f"multipart/form-data; boundary={BOUNDARY}",
    "application/pdf",
    "application/x-www-form-urlencoded",
)

warnings.filterwarnings("ignore")  # Pillow narrates the corrupt chunks and tags it skips


def _accepted(error: OcrError) -> None:
    """A refusal must be a client error: a 5xx here is a bug the fuzzer found."""
    if error.status >= 500:
        raise AssertionError(f"{type(error).__name__} {error.status}: {error.detail}") from error


def documents(data: bytes) -> None:
    """Sniff, count, size and (for a small first page) decode whatever the bytes claim to be."""
    try:
        document = open_document(data, SETTINGS)
    except OcrError as error:
        _accepted(error)
        return
    try:
        for number in document.selected(None):
            document.page_size(number)
        document.load_page(1)
    except OcrError as error:
        _accepted(error)
    finally:
        document.close()


def bodies(data: bytes) -> None:
    """The first byte picks the body style (JSON, multipart, raw, urlencoded); the rest is the body."""
    if not data:
        return
    content_type = BODY_STYLES[data[0] % len(BODY_STYLES)]
    body = data[1:]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/ocr",
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        "query_string": b"",
    }
    chunks = [body[: len(body) // 2], body[len(body) // 2 :]]  # two messages: parsers must join them

    async def receive() -> dict[str, object]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def run() -> None:
        try:
            await read_document(Request(scope, receive), SETTINGS.max_upload_bytes)
        except OcrError as error:
            _accepted(error)

    asyncio.run(run())


TARGETS: dict[str, Callable[[bytes], None]] = {"documents": documents, "bodies": bodies}


def seeds(name: str) -> list[bytes]:
    """Small valid inputs of every kind to start from (made here, so no binary files live in the repo)."""
    import base64
    import io

    from PIL import Image, ImageDraw

    def encoded(fmt: str, frames: int = 1, mode: str = "L", **params: object) -> bytes:
        images = []
        for n in range(frames):
            image = Image.new(mode, (60, 24), "white")
            ImageDraw.Draw(image).text((4, 4), f"seed {n}", fill="black")
            images.append(image)
        buffer = io.BytesIO()
        extra = {"save_all": True, "append_images": images[1:]} if frames > 1 else {}
        images[0].save(buffer, format=fmt, **extra, **params)
        return buffer.getvalue()

    documents = [
        encoded("PNG"),
        encoded("PNG", mode="RGBA"),
        encoded("JPEG", mode="RGB"),
        encoded("GIF", frames=3),
        encoded("TIFF", frames=2),
        encoded("WEBP", mode="RGB"),
        encoded("BMP"),
        encoded("PDF", frames=2, mode="RGB", resolution=72.0),
    ]
    if name == "documents":
        return documents
    png = documents[0]
    multipart = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="psm"\r\n\r\n6\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    json_body = b'{"content": "' + base64.b64encode(png) + b'", "psm": 6, "format": "text", "deskew": true}'
    return [bytes([0]) + json_body, bytes([1]) + multipart, bytes([2]) + documents[-1], bytes([3]) + b"a=1&b=2"]


def main() -> None:
    import tempfile

    logging.disable(logging.WARNING)  # python-multipart logs every malformed header it meets
    name = sys.argv[1]
    target = TARGETS[name]
    artifacts = REPRODUCERS / name
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as corpus:  # libFuzzer adds what it finds here
        for index, seed in enumerate(seeds(name)):
            Path(corpus, f"seed-{index}").write_bytes(seed)
        argv = [sys.argv[0], *sys.argv[2:], f"-artifact_prefix={artifacts}/", corpus]
        atheris.Setup(argv, target)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
