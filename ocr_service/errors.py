"""Every error a client can cause, with its HTTP status and stable problem `type`.

Lower layers (documents, engine, jobs) raise these; `http/problems.py` turns them into
`application/problem+json` (RFC 9457) and the CLI prints them. The `type` slugs are part of
the API: clients may switch on them, so they never change once published.
"""

from __future__ import annotations

PROBLEM_TYPE_BASE = "https://catalyst-ocr.dev/problems/"


class OcrError(Exception):
    """Base of all client-visible errors."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.param = param
        self.headers = headers or {}

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug

    def to_problem(self, instance: str | None = None) -> dict[str, object]:
        problem: dict[str, object] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.param is not None:
            problem["param"] = self.param
        if instance is not None:
            problem["instance"] = instance
        return problem


class InvalidParameter(OcrError):
    status, slug, title = 400, "invalid-parameter", "Invalid parameter"


class UnknownLanguage(InvalidParameter):
    slug, title = "unknown-language", "Language not installed"


class Unauthorized(OcrError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"


class NotFound(OcrError):
    status, slug, title = 404, "not-found", "Not found"


class NotAcceptable(OcrError):
    status, slug, title = 406, "not-acceptable", "No acceptable representation"


class Conflict(OcrError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(OcrError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class TooManyPixels(OcrError):
    status, slug, title = 413, "too-many-pixels", "Page has too many pixels"


class PageTooWide(OcrError):
    """A page side past what Leptonica (and so Tesseract) can hold, whatever its pixel count."""

    status, slug, title = 413, "page-too-wide", "Page side too long"


class TooManyPages(OcrError):
    status, slug, title = 413, "too-many-pages", "Document has too many pages"


class UnsupportedMediaType(OcrError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported document type"


class UndecodableDocument(OcrError):
    status, slug, title = 422, "undecodable-document", "Document could not be decoded"


class Overloaded(OcrError):
    status, slug, title = 429, "overloaded", "Too many requests in progress"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ServiceUnavailable(OcrError):
    status, slug, title = 503, "unavailable", "Service unavailable"


class RecognitionTimeout(OcrError):
    status, slug, title = 504, "timeout", "Recognition took too long"
