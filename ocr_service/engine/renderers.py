"""Tesseract's renderers, per page and merged: text, hOCR, TSV, ALTO and searchable PDF.

Jobs recognise pages one at a time (possibly on different replicas) and merge the results at
the end, so every format is produced as a per-page PART by the engine (from the same single
recognition that built the JSON model) and merged here by `combine`:

| format | part (what an engine returns for one page)            | combine                                   |
|--------|--------------------------------------------------------|-------------------------------------------|
| text   | the page's UTF-8 text                                  | pages joined by form feed (`\\f`)          |
| hocr   | the page's `<div class='ocr_page'>` with page-numbered ids | Tesseract's hOCR header + all divs + footer |
| tsv    | Tesseract's TSV rows, `page_num` = the page number, no header | header + all rows                  |
| alto   | a complete one-page ALTO document from Tesseract       | first header + every `<Page>` (ids prefixed `pN_`) |
| pdf    | a complete one-page searchable PDF from Tesseract      | pages imported into one PDF with pypdfium2 |

The engines produce the parts in exactly these shapes (the in-process engines call
`GetHOCRText(page)` and `GetTSVText(page)`; the CLI engine rewrites its page numbers), so
outputs are identical whichever engine ran.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence

import pypdfium2 as pdfium

from ocr_service.documents import PDFIUM_LOCK
from ocr_service.errors import OcrError
from ocr_service.options import OutputFormat

TSV_HEADER = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"

_HOCR_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{title}</title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name='ocr-system' content='{system}' />
  <meta name='ocr-capabilities' content='ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf'/>
 </head>
 <body>
"""
_HOCR_FOOTER = " </body>\n</html>\n"

_HOCR_IMAGE_TITLE = re.compile(r"""title='image "[^"]*";""")
_HOCR_BODY = re.compile(r"<body>\n?(.*)</body>", re.DOTALL)
_HOCR_IDS = re.compile(r"id='(page|block|par|line|word)_\d+")
_HOCR_PPAGENO = re.compile(r"ppageno \d+")
_ALTO_LAYOUT = re.compile(rb"<Layout>\s*(.*?)\s*</Layout>", re.DOTALL)
_ALTO_IDS = re.compile(rb'\b(ID|IDNEXT)="')
_ALTO_IMG_NR = re.compile(rb'PHYSICAL_IMG_NR="\d+"')
_ALTO_FILE_NAME = re.compile(rb"<fileName>.*?</fileName>", re.DOTALL)


class RenderError(OcrError):
    """An engine produced output that cannot be merged (a bug, not a client error)."""

    status, slug, title = 500, "render-error", "Output could not be rendered"


def hocr_page_part(fragment: str, page_number: int) -> str:
    """Normalise a page's hOCR div: ids and `ppageno` carry `page_number`, the image is named after the page."""
    fragment = _HOCR_IMAGE_TITLE.sub(f"""title='image "page-{page_number}";""", fragment, count=1)
    fragment = _HOCR_IDS.sub(lambda m: f"id='{m.group(1)}_{page_number}", fragment)
    fragment = _HOCR_PPAGENO.sub(f"ppageno {page_number - 1}", fragment, count=1)
    return fragment.rstrip() + "\n"


def hocr_fragment_of_document(document: str, page_number: int) -> str:
    """The page div(s) of a complete hOCR document (what the Tesseract CLI writes), as a page part."""
    match = _HOCR_BODY.search(document)
    if match is None:
        raise RenderError("Tesseract wrote an hOCR document without a body")
    return hocr_page_part(match.group(1), page_number)


def tsv_rows_with_page(tsv: str, page_number: int) -> str:
    """Tesseract TSV rows with the header dropped and `page_num` set to `page_number`."""
    rows = []
    for row in tsv.splitlines():
        if not row or row.startswith("level\t"):
            continue
        level, _, rest = row.split("\t", 2)
        rows.append(f"{level}\t{page_number}\t{rest}\n")
    return "".join(rows)


def combine(
    fmt: OutputFormat, parts: Sequence[tuple[int, bytes]], *, title: str = "document", system: str = ""
) -> bytes:
    """Merge per-page parts `(page_number, part)` in the given order into one document of `fmt`.

    `title` names the document in hOCR/ALTO headers; `system` is the engine string for hOCR's
    `ocr-system` (e.g. `tesseract 5.3.0`). JSON is not merged here: it is built from the model.
    """
    if fmt is OutputFormat.TEXT:
        return b"\f".join(part for _, part in parts)
    if fmt is OutputFormat.TSV:
        return TSV_HEADER.encode() + b"".join(part for _, part in parts)
    if fmt is OutputFormat.HOCR:
        header = _HOCR_HEADER.format(title=html.escape(title), system=html.escape(system, quote=True))
        return header.encode() + b"".join(part for _, part in parts) + _HOCR_FOOTER.encode()
    if fmt is OutputFormat.ALTO:
        return _combine_alto(parts, title)
    if fmt is OutputFormat.PDF:
        return _combine_pdf([part for _, part in parts])
    raise RenderError(f"format {fmt} is not rendered by Tesseract")


def _combine_alto(parts: Sequence[tuple[int, bytes]], title: str) -> bytes:
    if not parts:
        raise RenderError("no pages to merge")
    pages: list[bytes] = []
    for number, document in parts:
        match = _ALTO_LAYOUT.search(document)
        if match is None:
            raise RenderError(f"page {number}: Tesseract wrote ALTO without a Layout")
        prefix = b'="p' + str(number).encode() + b"_"
        page = _ALTO_IDS.sub(lambda m, prefix=prefix: m.group(1) + prefix, match.group(1))
        pages.append(_ALTO_IMG_NR.sub(f'PHYSICAL_IMG_NR="{number - 1}"'.encode(), page, count=1))
    first = parts[0][1]
    match = _ALTO_LAYOUT.search(first)
    assert match is not None
    head = _ALTO_FILE_NAME.sub(f"<fileName>{html.escape(title)}</fileName>".encode(), first[: match.start()], count=1)
    body = b"\n\t\t".join(pages)
    return head + b"<Layout>\n\t\t" + body + b"\n\t</Layout>" + first[match.end() :]


def _combine_pdf(documents: Sequence[bytes]) -> bytes:
    if len(documents) == 1:
        return documents[0]
    with PDFIUM_LOCK:
        merged = pdfium.PdfDocument.new()
        try:
            for document in documents:
                source = pdfium.PdfDocument(document)
                try:
                    merged.import_pages(source)
                finally:
                    source.close()
            buffer = io.BytesIO()
            merged.save(buffer)
        finally:
            merged.close()
    return buffer.getvalue()
