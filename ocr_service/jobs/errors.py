"""Client-visible errors of the jobs API, as `errors.OcrError` subclasses with their own problem types.

They live beside the jobs code (the shared `errors` module keeps the service-wide ones) and
`http/problems.py` renders them like every other `OcrError`.
"""

from __future__ import annotations

from ocr_service.errors import Conflict, InvalidParameter, NotFound, ServiceUnavailable


class StoreUnavailable(ServiceUnavailable):
    """The job store (PostgreSQL) cannot be reached; sync `/v1/ocr` keeps working meanwhile."""

    slug, title = "jobs-unavailable", "Job store unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class JobNotFound(NotFound):
    slug, title = "job-not-found", "No such job"


class IdempotencyConflict(Conflict):
    """The `Idempotency-Key` was already used for a different document, options or callback."""

    slug, title = "idempotency-key-reused", "Idempotency-Key reused with a different request"


class JobNotFinished(Conflict):
    slug, title = "job-not-finished", "Job has no result yet"


class JobAlreadyFinished(Conflict):
    slug, title = "job-already-finished", "Job already reached a final state"


class CallbackNotAllowed(InvalidParameter):
    """`callback_url` names a host outside `OCR_CALLBACK_ALLOWED_HOSTS` (no SSRF into the cluster)."""

    slug, title = "callback-not-allowed", "Callback URL not allowed"
