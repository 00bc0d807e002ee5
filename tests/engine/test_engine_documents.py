"""documents.py: type sniffing, header-only limits, page selection and decoding, on crafted inputs."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from engine_images import encode, multipage, pdf_with_page_size, text_image
from PIL import Image

from ocr_service import documents
from ocr_service.documents import DocumentKind, open_document, parse_pages, sniff
from ocr_service.errors import (
    InvalidParameter,
    TooManyPages,
    TooManyPixels,
    UndecodableDocument,
    UnsupportedMediaType,
)
from ocr_service.settings import Settings

SETTINGS = Settings(max_pixels=40_000_000, max_pages=5, pdf_dpi=300, max_dpi=600)


def png_with_declared_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width` x `height` but carries almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def tiff_with_declared_size(width: int, height: int) -> bytes:
    """A little-endian baseline TIFF whose IFD claims `width` x `height` 8-bit grey pixels."""
    entries = [
        (256, 4, 1, width),  # ImageWidth LONG
        (257, 4, 1, height),  # ImageLength LONG
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression none
        (262, 3, 1, 1),  # BlackIsZero
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),  # StripOffsets: right after the IFD
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, width * height & 0xFFFFFFFF),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHI", tag, kind, count) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\0" * 16


def gif_with_frames(frames: int, frame_size: tuple[int, int] = (1, 1)) -> bytes:
    """A 1x1 GIF with `frames` image blocks, written by hand (Pillow would merge identical frames)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, *frame_size, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame * frames + b"\x3b"


# -- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [
        ("PNG", DocumentKind.PNG),
        ("JPEG", DocumentKind.JPEG),
        ("TIFF", DocumentKind.TIFF),
        ("WEBP", DocumentKind.WEBP),
        ("BMP", DocumentKind.BMP),
        ("GIF", DocumentKind.GIF),
        ("PDF", DocumentKind.PDF),
    ],
)
def test_sniff_recognises_each_format_from_its_bytes(fmt: str, kind: DocumentKind) -> None:
    assert sniff(encode(text_image(["abc"]), fmt)) is kind


@pytest.mark.parametrize("data", [b"hello, this is plain text", b"\x00" * 64, bytes(range(256)), b"<svg></svg>"])
def test_unknown_bytes_are_unsupported_media_type(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        open_document(data, SETTINGS)
    assert caught.value.status == 415


def test_zero_bytes_is_a_precise_422() -> None:
    with pytest.raises(UndecodableDocument, match="empty"):
        open_document(b"", SETTINGS)


def test_a_png_name_cannot_make_garbage_a_png() -> None:
    with pytest.raises(UnsupportedMediaType):
        sniff(b"GIF8" + b"garbage")


# -- corrupt data --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_truncated_images_are_undecodable(fmt: str) -> None:
    data = encode(text_image(["truncated page"]), fmt)
    cut = data[: max(40, len(data) // 3)]
    with pytest.raises(UndecodableDocument) as caught:
        document = open_document(cut, SETTINGS)
        document.load_page(1)
    assert caught.value.status == 422


def test_garbled_pixel_data_behind_a_valid_header_is_undecodable() -> None:
    ihdr = struct.pack(">IIBBBBB", 400, 60, 8, 0, 0, 0, 0)
    garbage = bytes((index * 37 + 11) % 256 for index in range(900))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", garbage) + chunk(b"IEND", b"")
    document = open_document(data, SETTINGS)  # the header alone is fine
    assert document.page_size(1) == (400, 60)
    with pytest.raises(UndecodableDocument, match="page 1 of the PNG could not be decoded") as caught:
        document.load_page(1)
    assert caught.value.status == 422


# -- parsing each image once ---------------------------------------------------------------------


def test_a_single_page_image_is_opened_once_for_checks_and_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[DocumentKind] = []
    real_open = documents._open_pillow

    def counting_open(data: bytes, kind: DocumentKind) -> Image.Image:
        opened.append(kind)
        return real_open(data, kind)

    monkeypatch.setattr(documents, "_open_pillow", counting_open)
    expected = np.asarray(text_image(["opened once"]), dtype=np.uint8)
    document = open_document(encode(text_image(["opened once"]), "PNG"), SETTINGS)
    assert document.selected(None) == (1,)
    page = document.load_page(1)
    assert opened == [DocumentKind.PNG]
    assert np.array_equal(page.pixels, expected)
    # The header is handed out once; decoding the page again opens afresh and gives the same pixels.
    assert np.array_equal(document.load_page(1).pixels, expected)
    assert opened == [DocumentKind.PNG, DocumentKind.PNG]
    document.close()


def test_every_page_of_a_tiff_decodes_after_the_first_pages_header_was_kept() -> None:
    pages = [text_image([f"page {number}"], width=300 + 20 * number) for number in (1, 2, 3)]
    document = open_document(multipage(pages, "TIFF"), SETTINGS)
    assert document.selected(None) == (1, 2, 3)
    for number in (3, 1, 2):
        page = document.load_page(number)
        assert np.array_equal(page.pixels, np.asarray(pages[number - 1], dtype=np.uint8))
    document.close()


def test_a_document_closed_before_decoding_still_decodes_from_its_bytes() -> None:
    image = text_image(["closed early"])
    document = open_document(encode(image, "PNG"), SETTINGS)
    document.close()  # releases the kept header
    assert np.array_equal(document.load_page(1).pixels, np.asarray(image, dtype=np.uint8))
    document.close()


def test_pdf_garbage_after_header_is_undecodable() -> None:
    with pytest.raises(UndecodableDocument):
        open_document(b"%PDF-1.7\n" + bytes(range(256)) * 4, SETTINGS)


def test_truncated_pdf_is_undecodable_or_readable_never_a_crash() -> None:
    data = multipage([text_image(["one"]), text_image(["two"])], "PDF")
    with pytest.raises(UndecodableDocument):
        open_document(data[: len(data) // 2], SETTINGS).load_page(2)


# -- limits, from headers only ---------------------------------------------------------------------


def test_huge_declared_png_is_refused_from_its_header() -> None:
    data = png_with_declared_size(100_000, 100_000)
    started = time.perf_counter()
    with pytest.raises(TooManyPixels, match="100000x100000") as caught:
        open_document(data, SETTINGS)
    assert caught.value.status == 413
    assert time.perf_counter() - started < 1.0  # nothing was decoded (10^10 pixels would take minutes)


def test_huge_declared_tiff_is_refused_from_its_header() -> None:
    data = tiff_with_declared_size(60_000, 60_000)
    with pytest.raises(TooManyPixels, match="60000x60000"):
        open_document(data, SETTINGS)


def test_pixel_limit_is_the_setting() -> None:
    data = encode(text_image(["small"]), "PNG")
    width, height = Image.open(io.BytesIO(data)).size
    open_document(data, Settings(max_pixels=width * height))
    with pytest.raises(TooManyPixels):
        open_document(data, Settings(max_pixels=width * height - 1))


def test_many_frame_gif_is_refused_without_walking_every_frame() -> None:
    data = gif_with_frames(200_000)
    started = time.perf_counter()
    with pytest.raises(TooManyPages) as caught:
        open_document(data, SETTINGS)
    assert caught.value.status == 413
    assert time.perf_counter() - started < 0.5


def test_gif_frame_larger_than_its_screen_is_refused_from_its_descriptor() -> None:
    with pytest.raises(TooManyPixels, match="65535x65535"):
        open_document(gif_with_frames(2, frame_size=(65535, 65535)), SETTINGS)


def test_gif_frames_are_pages() -> None:
    document = open_document(gif_with_frames(3), SETTINGS)
    assert document.kind is DocumentKind.GIF
    assert document.page_count == 3
    assert document.load_page(3).pixels.shape[:2] == (1, 1)


def test_pdf_with_an_enormous_page_is_refused_before_rendering() -> None:
    data = pdf_with_page_size(14_400, 14_400)  # 200 x 200 inches: 60000 x 60000 pixels at 300 DPI
    document = open_document(data, SETTINGS)
    started = time.perf_counter()
    with pytest.raises(TooManyPixels, match=r"6000\dx6000\d"):
        document.selected(None)
    with pytest.raises(TooManyPixels):
        document.load_page(1)
    assert time.perf_counter() - started < 1.0


def test_pdf_pixel_check_scales_with_dpi() -> None:
    data = pdf_with_page_size(612, 792)  # US letter
    assert open_document(data, SETTINGS, dpi=72).page_size(1) == (612, 792)
    at_300 = open_document(data, SETTINGS, dpi=300)
    width, height = at_300.page_size(1)
    assert abs(width - 2550) <= 1 and abs(height - 3300) <= 1
    assert at_300.load_page(1).pixels.shape[:2] == (height, width)  # the checked size is the rendered size
    with pytest.raises(TooManyPixels):
        open_document(data, Settings(max_pixels=width * height - 1)).selected(None)


@pytest.mark.parametrize("fmt", ["TIFF", "PDF"])
def test_too_many_pages(fmt: str) -> None:
    data = multipage([text_image([str(n)]) for n in range(7)], fmt)
    with pytest.raises(TooManyPages) as caught:
        open_document(data, SETTINGS)
    assert caught.value.status == 413


def test_dpi_above_the_limit_is_a_parameter_error() -> None:
    with pytest.raises(InvalidParameter) as caught:
        open_document(pdf_with_page_size(100, 100), SETTINGS, dpi=601)
    assert caught.value.param == "dpi"


# -- pages ---------------------------------------------------------------------------------------


def test_parse_pages() -> None:
    assert parse_pages("1-3,7") == (1, 2, 3, 7)
    assert parse_pages("2, 2,1") == (2, 1)
    for bad in ("0", "3-1", "a", "", "1-x"):
        with pytest.raises(InvalidParameter) as caught:
            parse_pages(bad)
        assert caught.value.param == "pages"


def test_selection_and_out_of_range_pages() -> None:
    document = open_document(multipage([text_image(["a"]), text_image(["b"]), text_image(["c"])], "TIFF"), SETTINGS)
    assert document.page_count == 3
    assert document.selected(None) == (1, 2, 3)
    assert document.selected((3, 1)) == (3, 1)
    with pytest.raises(InvalidParameter, match="page 4 does not exist") as caught:
        document.selected((1, 4))
    assert caught.value.param == "pages"


def test_tiff_pages_decode_independently_and_in_any_order() -> None:
    widths = [200, 300, 400]
    images = [Image.new("L", (w, 50), 255) for w in widths]
    document = open_document(multipage(images, "TIFF"), SETTINGS)
    assert [document.load_page(n).width for n in (3, 1, 2)] == [400, 200, 300]


# -- pixels handed to the engine -----------------------------------------------------------------


def test_transparent_png_is_flattened_onto_white() -> None:
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))  # fully transparent black
    image.paste((0, 0, 0, 255), (10, 5, 20, 15))  # an opaque black square
    page = open_document(encode(image, "PNG"), SETTINGS).load_page(1)
    assert page.pixels.dtype == np.uint8
    assert page.pixels.ndim == 2  # decoded straight to grey (ocr_service/pixels.py)
    assert page.pixels[0, 0] == 255 and page.pixels[10, 15] == 0


def test_sixteen_bit_grey_is_scaled_to_eight_bits() -> None:
    array = np.zeros((10, 10), dtype=np.uint16)
    array[:, 5:] = 65535
    page = open_document(encode(Image.fromarray(array), "PNG"), SETTINGS).load_page(1)
    assert page.pixels.dtype == np.uint8
    assert page.pixels[0, 0] == 0 and page.pixels[0, 9] == 255


def test_palette_and_bilevel_images_become_grey_or_rgb() -> None:
    for mode in ("P", "1", "CMYK"):
        page = open_document(encode(text_image(["x"]).convert(mode), "TIFF"), SETTINGS).load_page(1)
        assert page.pixels.dtype == np.uint8
        assert page.pixels.ndim in (2, 3)


def test_declared_dpi_is_kept_when_credible() -> None:
    image = text_image(["dpi"])
    assert open_document(encode(image, "PNG", dpi=(200, 200)), SETTINGS).load_page(1).dpi == 200
    assert open_document(encode(image, "PNG", dpi=(1, 1)), SETTINGS).load_page(1).dpi is None


def test_pdf_pages_render_at_the_requested_dpi() -> None:
    data = pdf_with_page_size(72, 144, pages=2)
    page = open_document(data, SETTINGS, dpi=100).load_page(2)
    assert (page.width, page.height, page.dpi) == (100, 200, 100)
    assert page.pixels.min() == 255  # blank page renders white


# -- frame access is O(frames) and runs under the deadline ---------------------------------------


def distinct_frames(count: int, size: tuple[int, int] = (60, 40)) -> list[Image.Image]:
    """Frames that differ everywhere (Pillow merges identical frames and crops unchanged borders)."""
    return [Image.new("L", size, 20 + 7 * n) for n in range(count)]


@pytest.fixture
def gif_frames_decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the GIF frames Pillow moves through with pixels (each such `_seek` decodes the frame it leaves)."""
    from PIL import GifImagePlugin

    calls: list[int] = []
    original = GifImagePlugin.GifImageFile._seek

    def counting(self: GifImagePlugin.GifImageFile, frame: int, update_image: bool = True) -> None:
        if update_image:
            calls.append(frame)
        original(self, frame, update_image)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_seek", counting)
    return calls


def reference_frames(data: bytes, count: int) -> list[np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        frames = []
        for index in range(count):
            image.seek(index)
            frames.append(documents._to_uint8(image))
        return frames


def test_a_gif_of_n_frames_is_walked_once_for_all_its_pages(gif_frames_decoded: list[int]) -> None:
    frames = 12
    data = multipage(distinct_frames(frames), "GIF")
    expected = reference_frames(data, frames)
    gif_frames_decoded.clear()
    document = open_document(data, Settings(max_pages=50))
    numbers = document.selected(None)
    assert numbers == tuple(range(1, frames + 1))
    # Two workers take the fanned-out pages about in order, sometimes the later one first.
    order = [n for pair in zip(numbers[1::2], numbers[0::2], strict=True) for n in pair]
    pages = {n: document.load_page(n) for n in order}
    document.close()
    assert len(gif_frames_decoded) <= frames + 1, gif_frames_decoded  # was ~frames^2 / 2 (one re-walk per page)
    for n in numbers:
        assert np.array_equal(pages[n].pixels, expected[n - 1]), f"page {n} differs from Pillow's frame"


def test_gif_pages_load_concurrently_and_out_of_order(gif_frames_decoded: list[int]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    frames = 10
    data = multipage(distinct_frames(frames), "GIF")
    expected = reference_frames(data, frames)
    document = open_document(data, Settings(max_pages=50))
    numbers = document.selected(None)
    with ThreadPoolExecutor(3) as threads:
        pages = list(threads.map(document.load_page, reversed(numbers)))
    for page in pages:
        assert np.array_equal(page.pixels, expected[page.number - 1])


def test_gif_page_sizes_come_from_the_block_walk_as_pillow_reports_them() -> None:
    """A frame drawn past the logical screen grows the page, from that frame on (as Pillow's seek does)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 4, 3, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"

    def frame(left: int, top: int) -> bytes:
        return b"\x2c" + struct.pack("<HHHHB", left, top, 1, 1, 0) + b"\x02\x02\x44\x01\x00"

    data = header + frame(0, 0) + frame(6, 1) + frame(1, 9) + frame(0, 0) + b"\x3b"
    document = open_document(data, SETTINGS)
    sizes = [document.page_size(n) for n in document.selected(None)]
    with Image.open(io.BytesIO(data)) as image:
        pillow = []
        for index in range(4):
            image.seek(index)
            pillow.append(image.size)
    assert sizes == pillow == [(4, 3), (7, 3), (7, 10), (7, 10)]


def test_a_passed_deadline_stops_a_gif_page_within_one_frame(gif_frames_decoded: list[int]) -> None:
    from ocr_service.deadline import Deadline
    from ocr_service.errors import RecognitionTimeout

    data = multipage(distinct_frames(20), "GIF")
    document = open_document(data, Settings(max_pages=50))
    document.selected(None)
    deadline = Deadline.after(60)
    document.load_page(2, deadline)
    gif_frames_decoded.clear()
    deadline.cancel()
    with pytest.raises(RecognitionTimeout):
        document.load_page(20, deadline)
    assert len(gif_frames_decoded) <= 1
    with pytest.raises(RecognitionTimeout):
        open_document(multipage(distinct_frames(3), "TIFF"), SETTINGS, deadline=deadline)


def test_tiff_page_sizes_are_read_in_the_counting_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = [(30 + n, 20 + n) for n in range(5)]
    data = multipage([Image.new("L", size, 255) for size in sizes], "TIFF")
    opened = 0
    original = documents._open_pillow

    def counting(data: bytes, kind: DocumentKind) -> Image.Image:
        nonlocal opened
        opened += 1
        return original(data, kind)

    monkeypatch.setattr(documents, "_open_pillow", counting)
    document = open_document(data, SETTINGS)
    assert [document.page_size(n) for n in document.selected(None)] == sizes
    assert opened == 1  # the pass that counted the pages; no re-open and seek per page
