"""`Accept` header -> output format, for clients that ask by media type instead of `format=`.

An explicit `format` option always wins; without one the best-ranked media type we can
produce is chosen (RFC 9110 quality values, most specific match first). A header that
accepts nothing we produce is a 406, not a silent JSON answer.
"""

from __future__ import annotations

from ocr_service.errors import NotAcceptable
from ocr_service.options import OutputFormat

ACCEPTED_MEDIA_TYPES: dict[str, OutputFormat] = {
    "application/json": OutputFormat.JSON,
    "text/plain": OutputFormat.TEXT,
    "text/html": OutputFormat.HOCR,
    "application/xhtml+xml": OutputFormat.HOCR,
    "text/tab-separated-values": OutputFormat.TSV,
    "application/xml": OutputFormat.ALTO,
    "text/xml": OutputFormat.ALTO,
    "application/alto+xml": OutputFormat.ALTO,
    "application/pdf": OutputFormat.PDF,
}
"""Media types a client may put in `Accept`, and the format each selects."""

_WILDCARDS: dict[str, OutputFormat] = {
    "*/*": OutputFormat.JSON,
    "application/*": OutputFormat.JSON,
    "text/*": OutputFormat.TEXT,
}


def negotiate_format(accept: str | None, default: OutputFormat = OutputFormat.JSON) -> OutputFormat:
    """The format that best matches `accept`; `default` when the header is absent or accepts anything.

    `default` is JSON for `/v1/ocr`, and a job's result defaults to the format it was submitted with.
    """
    if accept is None or not accept.strip():
        return default
    best: tuple[float, int, int] | None = None
    chosen: OutputFormat | None = None
    for position, item in enumerate(accept.split(",")):
        media_type, quality = _parse_item(item)
        if quality <= 0:
            continue
        if media_type == "*/*":
            output: OutputFormat | None = default
        else:
            output = ACCEPTED_MEDIA_TYPES.get(media_type) or _WILDCARDS.get(media_type)
        if output is None:
            continue
        specificity = 0 if media_type in _WILDCARDS else 1
        rank = (quality, specificity, -position)
        if best is None or rank > best:
            best, chosen = rank, output
    if chosen is None:
        offered = ", ".join(sorted(ACCEPTED_MEDIA_TYPES))
        raise NotAcceptable(f"Accept: {accept[:200]!r} matches none of the formats offered ({offered}).")
    return chosen


def _parse_item(item: str) -> tuple[str, float]:
    media_type, *params = (part.strip() for part in item.split(";"))
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
            if not 0.0 <= quality <= 1.0:
                quality = 0.0
    return media_type.lower(), quality
