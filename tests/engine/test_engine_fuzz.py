"""Corrupted documents never escape as anything but a precise 4xx `OcrError`.

Valid small files of every kind are truncated and have bytes flipped by a seeded RNG; opening,
size-checking and decoding each variant must either work or raise an `OcrError` with a 4xx
status, never another exception (which the HTTP layer would turn into a 500).
"""

from __future__ import annotations

import random

import pytest
from engine_images import encode, multipage, text_image

from ocr_service.documents import open_document
from ocr_service.errors import OcrError
from ocr_service.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow narrates the corrupt TIFF tags it skips

SETTINGS = Settings(max_pixels=4_000_000, max_pages=5)
VARIANTS_PER_KIND = 400


def originals() -> dict[str, bytes]:
    image = text_image(["fuzz me"])
    pages = [text_image(["one"]), text_image(["two"])]
    return {
        "PNG": encode(image, "PNG"),
        "JPEG": encode(image, "JPEG"),
        "WEBP": encode(image, "WEBP"),
        "BMP": encode(image, "BMP"),
        "GIF": multipage(pages, "GIF"),
        "TIFF": multipage(pages, "TIFF"),
        "PDF": multipage(pages, "PDF"),
    }


def mutate(data: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.4:
        return data[: rng.randrange(1, len(data))]
    mutable = bytearray(data)
    for _ in range(rng.randrange(1, 12)):
        position = rng.randrange(min(len(mutable), 4096))  # headers live up front
        mutable[position] = rng.randrange(256)
    return bytes(mutable)


@pytest.mark.parametrize("kind", list(originals()))
def test_mutated_documents_only_raise_client_errors(kind: str) -> None:
    rng = random.Random(f"catalyst-{kind}")
    original = originals()[kind]
    for _ in range(VARIANTS_PER_KIND):
        data = mutate(original, rng)
        try:
            document = open_document(data, SETTINGS, dpi=100)
            for number in document.selected(None):
                page = document.load_page(number)
                assert page.pixels.dtype.name == "uint8" and page.pixels.ndim in (2, 3)
            document.close()
        except OcrError as error:
            assert 400 <= error.status < 500, error
