"""Bytes -> pages: sniff the document type, enforce the size limits, decode one page at a time.

Why it looks like this:

- The type comes from magic bytes only (`sniff`), never from a file name or a declared
  `Content-Type`: clients lie, and a wrong guess would hand attacker bytes to the wrong decoder.
- Limits are checked from headers BEFORE any pixel is decoded: Pillow's lazy `open` gives the
  size of a single image, the ONE pass that counts a document's frames records every frame's
  size on the way (TIFF: one `seek` per IFD, no pixel data read; GIF: a walk of the block
  structure, `_gif_frame_sizes`, no LZW decoding), and PDF page sizes come from pdfium in points
  and are scaled by `dpi / 72`. So sizing and selecting pages is O(frames), never a re-open and
  seek per frame. Pillow's own decompression-bomb guard is switched off
  (`Image.MAX_IMAGE_PIXELS = None`) because our explicit checks replace it with precise 413s;
  should it fire anyway, it is mapped to `TooManyPixels`.
- Pages are decoded lazily by `Document.load_page(number)`, each from a fresh view of the
  bytes, so worker threads can decode different pages of one document concurrently and the
  jobs layer can decode a single page of a stored document. Memory stays at one page per worker.
  GIF is the exception: a GIF frame is drawn over the frames before it, and Pillow's `seek(n)`
  decodes every earlier frame, so a fresh open per page would decode N(N+1)/2 frames. GIF pages
  come from ONE image walked forward (`_GifFrames`): each frame is decoded once, and a selected
  frame passed on the way to a later one (another worker asked first) is kept until its page
  is loaded.
- Decoding runs under the page's `Deadline`: it is checked before a page is decoded and between
  frames (TIFF IFDs while counting, GIF frames while walking), so no document outlives its limit
  by more than one frame's decoding.
- Each image is parsed once: a page's size is read from its header once and remembered, and
  the first page's header, opened by `open_document` for the size check, is the very image
  `load_page(1)` decodes (Pillow opens lazily, so nothing is decoded before the checks). A
  single-page request therefore opens its image once, as any plain decode would.
- pdfium is not thread-safe: every call into it holds `PDFIUM_LOCK` (exported for the
  renderers, which merge PDFs with pypdfium2 too).

Pages are numbered from 1 everywhere in this module's public API, as users count them.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError

from ocr_service.deadline import Deadline
from ocr_service.errors import (
    InvalidParameter,
    OcrError,
    PageTooWide,
    TooManyPages,
    TooManyPixels,
    UndecodableDocument,
    UnsupportedMediaType,
)
from ocr_service.pixels import to_grey_uint8
from ocr_service.settings import Settings

Image.MAX_IMAGE_PIXELS = None  # our header checks below replace Pillow's bomb guard (see module docstring)

PDFIUM_LOCK = threading.RLock()
"""Serialises every pdfium call in the process (pdfium keeps global state and is not thread-safe)."""

PixelArray = npt.NDArray[np.uint8]
"""A decoded page: (height, width) uint8 grey (`pixels.py`: colour and 16-bit pages are converted at decode)."""

MAX_PAGE_SIDE = 32767
"""Leptonica refuses an image with a side past this (its PIX width/height limit): Tesseract then
fails the page, whatever its pixel count, so such pages are refused up front (413 `page-too-wide`)."""

_MIN_CREDIBLE_DPI = 70
_MAX_CREDIBLE_DPI = 2400


class DocumentKind(StrEnum):
    """A supported document type, as recognised from its magic bytes."""

    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    WEBP = "webp"
    BMP = "bmp"
    GIF = "gif"
    PDF = "pdf"


MEDIA_TYPE_OF_KIND: dict[DocumentKind, str] = {
    DocumentKind.PNG: "image/png",
    DocumentKind.JPEG: "image/jpeg",
    DocumentKind.TIFF: "image/tiff",
    DocumentKind.WEBP: "image/webp",
    DocumentKind.BMP: "image/bmp",
    DocumentKind.GIF: "image/gif",
    DocumentKind.PDF: "application/pdf",
}


def sniff(data: bytes) -> DocumentKind:
    """The document type from its leading bytes; `UnsupportedMediaType` (or 422 when empty) otherwise."""
    if not data:
        raise UndecodableDocument("the document is empty (zero bytes)")
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DocumentKind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return DocumentKind.JPEG
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return DocumentKind.TIFF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return DocumentKind.WEBP
    if head[:2] == b"BM":
        return DocumentKind.BMP
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return DocumentKind.GIF
    # The PDF specification lets readers accept junk before the header within the first KiB.
    if b"%PDF-" in data[:1024]:
        return DocumentKind.PDF
    raise UnsupportedMediaType(
        "unsupported document type: expected PNG, JPEG, TIFF, WebP, BMP, GIF or PDF (detected from the content)"
    )


@dataclass(frozen=True)
class PageImage:
    """One decoded page: its 1-based number, pixels, and the resolution it was scanned or rendered at."""

    number: int
    pixels: PixelArray
    dpi: int | None

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def parse_pages(raw: str) -> tuple[int, ...]:
    """`"1-3,7"` -> (1, 2, 3, 7): the `pages` syntax shared by the HTTP layer and the CLI."""
    numbers: list[int] = []
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            start = int(first)
            stop = int(last) if dash else start
        except ValueError:
            raise InvalidParameter(f"pages: {part!r} is not a page number or range like 1-3", param="pages") from None
        if start < 1 or stop < start:
            raise InvalidParameter(f"pages: {part!r} must be 1-based and ascending", param="pages")
        if stop - start > 100_000:
            raise InvalidParameter(f"pages: range {part!r} is too long", param="pages")
        numbers.extend(range(start, stop + 1))
    if not numbers:
        raise InvalidParameter("pages: no page numbers given", param="pages")
    return tuple(dict.fromkeys(numbers))


class Document:
    """A sniffed, size-checked document whose pages decode on demand (see the module docstring)."""

    def __init__(
        self,
        data: bytes,
        kind: DocumentKind,
        page_count: int,
        settings: Settings,
        dpi: int,
        sizes: list[tuple[int, int]] | None = None,
    ) -> None:
        """`sizes`: every page's (width, height) when the pass that counted the pages learned them."""
        self.data = data
        self.kind = kind
        self.page_count = page_count
        self.dpi = dpi
        self._settings = settings
        self._pdf: pdfium.PdfDocument | None = None
        self._sizes: dict[int, tuple[int, int]] = dict(enumerate(sizes or (), start=1))
        self._gif = _GifFrames(self._open_image) if kind is DocumentKind.GIF else None
        self._first_page: Image.Image | None = None
        """Page 1 as opened for its size check, kept (undecoded) for `load_page(1)` to decode."""
        self._first_page_lock = threading.Lock()

    @property
    def media_type(self) -> str:
        return MEDIA_TYPE_OF_KIND[self.kind]

    def selected(self, pages: tuple[int, ...] | None) -> tuple[int, ...]:
        """The page numbers to recognise: all, or `pages` after checking each exists and fits the pixel limit."""
        if pages is None:
            numbers = tuple(range(1, self.page_count + 1))
        else:
            missing = [n for n in pages if not 1 <= n <= self.page_count]
            if missing:
                raise InvalidParameter(
                    f"pages: page {missing[0]} does not exist; the document has {self.page_count} page(s)",
                    param="pages",
                )
            numbers = tuple(pages)
        if len(numbers) > self._settings.max_pages:
            raise TooManyPages(
                f"{len(numbers)} pages selected; the limit is {self._settings.max_pages}"
                if pages is not None
                else f"the document has {len(numbers)} pages; the limit is {self._settings.max_pages}"
            )
        for number in numbers:
            self._check_pixels(number, *self.page_size(number))
        if self._gif is not None:
            self._gif.wanted = frozenset(numbers)
        return numbers

    def page_size(self, number: int) -> tuple[int, int]:
        """(width, height) in pixels of page `number` as it will be decoded, read from headers only (once)."""
        self._check_number(number)
        size = self._sizes.get(number)
        if size is None:
            size = self._sizes[number] = self._read_page_size(number)
        return size

    def _read_page_size(self, number: int) -> tuple[int, int]:
        if self.kind is DocumentKind.PDF:
            try:
                with PDFIUM_LOCK:
                    width_pt, height_pt = self._pdf_document().get_page_size(number - 1)
            except pdfium.PdfiumError as exc:
                raise UndecodableDocument(f"page {number} of the PDF is unreadable: {exc}") from None
            if not (math.isfinite(width_pt) and math.isfinite(height_pt) and width_pt > 0 and height_pt > 0):
                raise UndecodableDocument(f"page {number} of the PDF has an invalid size {width_pt}x{height_pt}")
            scale = self.dpi / 72  # the same arithmetic pypdfium2 renders with, so the check is exact
            return max(1, math.ceil(width_pt * scale)), max(1, math.ceil(height_pt * scale))
        if number == 1:
            with self._first_page_lock:
                if self._first_page is None:
                    self._first_page = self._open_image()
                return int(self._first_page.width), int(self._first_page.height)
        with self._open_image() as image:
            self._seek(image, number)
            return int(image.width), int(image.height)

    def load_page(self, number: int, deadline: Deadline | None = None) -> PageImage:
        """Decode page `number` (1-based) to a uint8 grey/RGB array; safe to call from several threads.

        `deadline` is checked before decoding and between the frames a GIF walks past.
        """
        width, height = self.page_size(number)
        self._check_pixels(number, width, height)
        if deadline is not None:
            deadline.check(f"page {number}: decoding")
        if self.kind is DocumentKind.PDF:
            return PageImage(number, self._render_pdf_page(number), self.dpi)
        try:
            if self._gif is not None:
                return self._gif.page(number, deadline, self._seek)
            with self._take_first_page() if number == 1 else self._open_image() as image:
                if number > 1:
                    self._seek(image, number)
                return _decode(image, number, self.kind)
        except OcrError:
            raise
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(f"page {number}: {exc}") from None
        except Exception as exc:  # decoders raise anything (OSError, SyntaxError, struct.error...) on bad data
            raise UndecodableDocument(
                f"page {number} of the {self.kind.value.upper()} could not be decoded: {exc}"
            ) from None

    def iter_pages(self, pages: tuple[int, ...] | None = None) -> Iterator[PageImage]:
        """Decode the selected pages one after another, holding only one in memory at a time."""
        for number in self.selected(pages):
            yield self.load_page(number)

    def close(self) -> None:
        with self._first_page_lock:
            first, self._first_page = self._first_page, None
        if first is not None:
            first.close()
        if self._gif is not None:
            self._gif.close()
        if self._pdf is not None:
            with PDFIUM_LOCK:
                self._pdf.close()
            self._pdf = None

    # -- internals -------------------------------------------------------------------------------

    def _check_number(self, number: int) -> None:
        if not 1 <= number <= self.page_count:
            raise InvalidParameter(
                f"pages: page {number} does not exist; the document has {self.page_count} page(s)", param="pages"
            )

    def _check_pixels(self, number: int, width: int, height: int) -> None:
        """Both limits of a page, from its header (or MediaBox at the chosen dpi) before any pixel is decoded."""
        if width * height > self._settings.max_pixels:
            raise TooManyPixels(
                f"page {number} is {width}x{height} = {width * height} pixels; the limit is {self._settings.max_pixels}"
            )
        if max(width, height) > MAX_PAGE_SIDE:
            hint = " (render it at a lower dpi)" if self.kind is DocumentKind.PDF else ""
            raise PageTooWide(
                f"page {number} is {width}x{height} pixels{hint}; Tesseract (Leptonica) takes at most "
                f"{MAX_PAGE_SIDE} pixels per side"
            )

    def _open_image(self) -> Image.Image:
        return _open_pillow(self.data, self.kind)

    def _take_first_page(self) -> Image.Image:
        """Page 1's already-opened header for decoding (it is handed out once), else a fresh open."""
        with self._first_page_lock:
            first, self._first_page = self._first_page, None
        return first if first is not None else self._open_image()

    def _seek(self, image: Image.Image, number: int) -> None:
        try:
            image.seek(number - 1)
        except EOFError:
            raise UndecodableDocument(
                f"page {number} of the {self.kind.value.upper()} is missing or truncated"
            ) from None
        except Exception as exc:
            raise UndecodableDocument(f"page {number} of the {self.kind.value.upper()} is unreadable: {exc}") from None

    def _pdf_document(self) -> pdfium.PdfDocument:
        if self._pdf is None:
            self._pdf = _open_pdf(self.data)
        return self._pdf

    def _render_pdf_page(self, number: int) -> PixelArray:
        # Every pdfium object is released inside the lock: left to the garbage collector, a bitmap
        # would be destroyed on whatever thread drops it, racing another thread's render.
        with PDFIUM_LOCK:
            try:
                page = self._pdf_document()[number - 1]
                try:
                    bitmap = page.render(scale=self.dpi / 72)
                    try:
                        pixels = _to_uint8(bitmap.to_pil())  # copies out of pdfium's buffer
                    finally:
                        bitmap.close()
                finally:
                    page.close()
            except pdfium.PdfiumError as exc:
                raise UndecodableDocument(f"page {number} of the PDF could not be rendered: {exc}") from None
        return pixels


def open_document(
    data: bytes,
    settings: Settings,
    dpi: int | None = None,
    deadline: Deadline | None = None,
    *,
    pages: tuple[int, ...] | None = None,
) -> Document:
    """Sniff and size-check `data` without decoding pixels; `dpi` rasterises PDFs (default `settings.pdf_dpi`).

    `deadline` is checked between the frames counted (a TIFF's IFDs are read one by one).
    With `pages`, a PDF longer than `settings.max_pages` is not refused here: the selection is
    what must fit, and `Document.selected` checks it. Image frames are only counted up to the
    limit, so a multi-frame image must fit whole.
    """
    kind = sniff(data)
    dpi = settings.pdf_dpi if dpi is None else dpi
    if not 1 <= dpi <= settings.max_dpi:
        raise InvalidParameter(f"dpi must be between 1 and {settings.max_dpi}, got {dpi}", param="dpi")
    if kind is DocumentKind.PDF:
        with PDFIUM_LOCK:
            pdf = _open_pdf(data)
            count = len(pdf)
        if count < 1:
            with PDFIUM_LOCK:
                pdf.close()
            raise UndecodableDocument("the PDF has no pages")
        document = Document(data, kind, count, settings, dpi)
        document._pdf = pdf
    else:
        sizes = _image_page_sizes(data, kind, settings.max_pages, settings.max_pixels, deadline)
        count = len(sizes) if sizes is not None else 1
        document = Document(data, kind, count, settings, dpi, sizes)
        document._check_pixels(1, *document.page_size(1))
    if count > settings.max_pages and not (pages is not None and kind is DocumentKind.PDF):
        document.close()
        # Image frames are counted only up to one past the limit; a PDF knows its exact count.
        raise TooManyPages(
            f"the document has {count} pages; the limit is {settings.max_pages}"
            if kind is DocumentKind.PDF
            else f"the document has more than {settings.max_pages} pages (the limit)"
        )
    return document


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise UndecodableDocument("the PDF is encrypted with a password") from None
        raise UndecodableDocument(f"the PDF could not be opened: {exc}") from None


def _open_pillow(data: bytes, kind: DocumentKind) -> Image.Image:
    formats = {DocumentKind.JPEG: "JPEG", DocumentKind.TIFF: "TIFF", DocumentKind.WEBP: "WEBP"}
    formats |= {DocumentKind.PNG: "PNG", DocumentKind.BMP: "BMP", DocumentKind.GIF: "GIF"}
    try:
        return Image.open(io.BytesIO(data), formats=[formats[kind]])
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(str(exc)) from None
    except UnidentifiedImageError:
        raise UndecodableDocument(f"the data starts like a {kind.value.upper()} but its header is invalid") from None
    except Exception as exc:  # other bad headers surface as SyntaxError, struct.error, ValueError...
        raise UndecodableDocument(f"the {kind.value.upper()} header could not be read: {exc}") from None


def _image_page_sizes(
    data: bytes, kind: DocumentKind, max_pages: int, max_pixels: int, deadline: Deadline | None
) -> list[tuple[int, int]] | None:
    """Every frame's size in one pass, at most `max_pages + 1` frames (a huge count is never walked).

    None for the single-image kinds: their one size comes from the header `load_page(1)` reuses.
    """
    if kind is DocumentKind.GIF:
        return _gif_frame_sizes(data, max_pages + 1, max_pixels)
    if kind is not DocumentKind.TIFF:
        return None
    with _open_pillow(data, kind) as image:
        sizes = [(int(image.width), int(image.height))]
        while len(sizes) <= max_pages:
            if deadline is not None:
                deadline.check(f"counting the TIFF's pages (at page {len(sizes) + 1})")
            try:
                image.seek(len(sizes))  # reads the next IFD only; no pixel data is decoded
            except EOFError:
                break
            except Exception as exc:
                raise UndecodableDocument(f"TIFF page {len(sizes) + 1} is unreadable: {exc}") from None
            sizes.append((int(image.width), int(image.height)))
        return sizes


def _gif_frame_sizes(data: bytes, stop_at: int, max_pixels: int) -> list[tuple[int, int]]:
    """Each frame's page size by walking the GIF's blocks (no LZW decoding), stopping after `stop_at` frames.

    A page's size is what Pillow gives that frame: the logical screen, grown to hold every frame
    so far (a frame may reach past the screen). Each frame's own size is checked too.
    """

    def skip_sub_blocks(pos: int) -> int:
        while True:
            if pos >= len(data):
                raise UndecodableDocument("the GIF is truncated")
            size = data[pos]
            pos += 1 + size
            if size == 0:
                return pos

    if len(data) < 13:
        raise UndecodableDocument("the GIF is truncated")
    screen = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    sizes: list[tuple[int, int]] = []
    page_width, page_height = screen
    while len(sizes) < stop_at:
        if pos >= len(data):
            break  # a missing trailer is common; count what is there
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW code size, data
            if pos + 10 > len(data):
                raise UndecodableDocument("the GIF is truncated")
            left, top, width, height = (int.from_bytes(data[pos + i : pos + i + 2], "little") for i in (1, 3, 5, 7))
            if width * height > max_pixels:
                raise TooManyPixels(
                    f"GIF frame {len(sizes) + 1} is {width}x{height} = {width * height} pixels; "
                    f"the limit is {max_pixels}"
                )
            page_width, page_height = max(page_width, left + width), max(page_height, top + height)
            local = data[pos + 9]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0) + 1
            pos = skip_sub_blocks(pos)
            sizes.append((page_width, page_height))
        else:
            raise UndecodableDocument(f"the GIF has an unknown block 0x{block:02x} at byte {pos}")
    if not sizes:
        raise UndecodableDocument("the GIF has no image frames")
    return sizes


class _GifFrames:
    """A GIF's pages from ONE Pillow image walked forward, each frame decoded once (see module docstring).

    `wanted` (the selected pages) says which frames passed on the way to a later page are kept
    for their own `load_page`, so pages fanned out over the pool in order cost no re-walk even
    when two workers ask out of order. Threads take turns (the walk is inherently sequential).
    """

    def __init__(self, open_image: Callable[[], Image.Image]) -> None:
        self._open_image = open_image
        self._lock = threading.Lock()
        self._image: Image.Image | None = None
        self._kept: dict[int, PageImage] = {}
        self._delivered: set[int] = set()
        self.wanted: frozenset[int] = frozenset()

    def page(self, number: int, deadline: Deadline | None, seek: Callable[[Image.Image, int], None]) -> PageImage:
        with self._lock:
            kept = self._kept.pop(number, None)
            if kept is not None:
                self._delivered.add(number)
                return kept
            image = self._image
            if image is None or image.tell() > number - 1:  # never opened, or past this frame: start over
                if image is not None:
                    image.close()
                image = self._image = self._open_image()
            while image.tell() < number - 1:
                passing = image.tell() + 1  # the page the image holds now
                if passing in self.wanted and passing not in self._delivered and passing not in self._kept:
                    self._kept[passing] = _decode(image, passing, DocumentKind.GIF)
                if deadline is not None:
                    deadline.check(f"page {number}: decoding GIF frame {passing + 1}")
                seek(image, passing + 1)  # decodes the frame it leaves (once), reads the next header
            self._delivered.add(number)
            return _decode(image, number, DocumentKind.GIF)

    def close(self) -> None:
        with self._lock:
            image, self._image = self._image, None
            self._kept.clear()
        if image is not None:
            image.close()


def _decode(image: Image.Image, number: int, kind: DocumentKind) -> PageImage:
    """Decode the frame `image` is at into page `number` (JPEG turned upright by its EXIF orientation)."""
    dpi = _image_dpi(image)
    image.load()
    frame = image if kind is not DocumentKind.JPEG else ImageOps.exif_transpose(image)
    return PageImage(number, _to_uint8(frame), dpi)


def _image_dpi(image: Image.Image) -> int | None:
    """The resolution the file declares, when it is credible (Tesseract estimates it otherwise)."""
    raw: Any = image.info.get("dpi")
    try:
        dpi = round(float(raw[1] if isinstance(raw, tuple) else raw))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return dpi if _MIN_CREDIBLE_DPI <= dpi <= _MAX_CREDIBLE_DPI else None


def _to_uint8(image: Image.Image) -> PixelArray:
    """8-bit grey pixels, converted in bands at decode time (`pixels.py`: recognition needs no more)."""
    return to_grey_uint8(image)
