"""The values the jobs layer passes around: jobs, claimed pages, events and queue figures.

They are plain frozen dataclasses so that both stores (PostgreSQL, SQLite), the workers and
the HTTP routes agree on one shape without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ocr_service.options import OcrOptions, OutputFormat, PreprocessOptions


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})

ALL_FORMATS: tuple[OutputFormat, ...] = tuple(OutputFormat)
"""A job renders every format once, so its result can be fetched in any of them later."""


def options_dict(options: OcrOptions) -> dict[str, Any]:
    """Options as plain JSON values (stored with the job and shown in its status)."""
    return {
        "lang": options.lang,
        "psm": options.psm,
        "oem": options.oem,
        "dpi": options.dpi,
        "pages": list(options.pages) if options.pages is not None else None,
        "preprocess": {"mode": options.preprocess.mode, "steps": dict(options.preprocess.steps)},
        "format": options.format.value,
    }


def options_to_json(options: OcrOptions) -> str:
    """Serialise options for storage; `options_from_json` is its exact inverse."""
    return json.dumps(options_dict(options), sort_keys=True)


def options_from_json(text: str) -> OcrOptions:
    raw = json.loads(text)
    pages = raw.get("pages")
    return OcrOptions(
        lang=raw["lang"],
        psm=int(raw["psm"]),
        oem=int(raw["oem"]),
        dpi=int(raw["dpi"]),
        pages=tuple(int(p) for p in pages) if pages is not None else None,
        preprocess=PreprocessOptions(mode=raw["preprocess"]["mode"], steps=dict(raw["preprocess"]["steps"])),
        format=OutputFormat(raw["format"]),
    )


def request_fingerprint(document_sha256: str, options: OcrOptions, callback_url: str | None) -> str:
    """What makes two submissions "the same request" for `Idempotency-Key` purposes."""
    digest = hashlib.sha256()
    digest.update(document_sha256.encode())
    digest.update(options_to_json(options).encode())
    digest.update((callback_url or "").encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class NewJob:
    """A validated submission: the document, its selected pages and how to recognise them.

    `document_sha256` is computed here when not given; callers that hashed the document off
    the event loop already (the pipeline's `inspect` does) pass it in. `owner` is the opaque id
    of the API key that submits it (None without authentication); it scopes `idempotency_key`.
    """

    document: bytes
    options: OcrOptions
    page_numbers: tuple[int, ...]
    filename: str = ""
    callback_url: str | None = None
    idempotency_key: str | None = None
    document_sha256: str = ""
    owner: str | None = None

    def __post_init__(self) -> None:
        if not self.document_sha256:
            object.__setattr__(self, "document_sha256", hashlib.sha256(self.document).hexdigest())

    @property
    def fingerprint(self) -> str:
        return request_fingerprint(self.document_sha256, self.options, self.callback_url)


@dataclass(frozen=True)
class Job:
    """A job as stored. `error` is a problem-details object when the job failed.

    `owner` (None when it was created without authentication) decides who may see the job; it is
    deliberately not part of `to_json`: clients and callback receivers have no use for it.
    """

    id: str
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    options: OcrOptions
    filename: str
    document_sha256: str
    pages_total: int
    pages_done: int
    cached_pages: int
    error: dict[str, Any] | None
    callback_url: str | None
    callback_state: str | None
    owner: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def cached(self) -> bool:
        """Every page came from the result cache: nothing was recognised for this job."""
        return self.pages_total > 0 and self.cached_pages == self.pages_total

    def to_json(self) -> dict[str, Any]:
        """The job as the API and the callbacks show it."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat().replace("+00:00", "Z")

        return {
            "id": self.id,
            "status": self.status.value,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "pages_total": self.pages_total,
            "pages_done": self.pages_done,
            "cached": self.cached,
            "cached_pages": self.cached_pages,
            "filename": self.filename,
            "document_sha256": self.document_sha256,
            "options": options_dict(self.options),
            "callback_url": self.callback_url,
            "callback_state": self.callback_state,
            "error": self.error,
        }


@dataclass(frozen=True)
class ClaimedPage:
    """A page a worker holds under a lease; `attempt` tells its results apart from a lost earlier try."""

    job_id: str
    index: int
    page_number: int
    attempt: int
    options: OcrOptions
    document_sha256: str
    pages_total: int


@dataclass(frozen=True)
class JobEvent:
    """One progress or state-change record, streamed by `GET /v1/jobs/{id}/events`."""

    id: int
    job_id: str
    at: datetime
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ReapOutcome:
    """What one pass over expired leases did."""

    requeued: int = 0
    failed_jobs: int = 0


@dataclass(frozen=True)
class QueueStats:
    """Figures for the metrics: jobs per state, queued pages and how long the oldest has waited."""

    jobs_by_state: dict[str, int] = field(default_factory=dict)
    queued_pages: int = 0
    oldest_queued_age_seconds: float = 0.0
    running_pages: int = 0
    """Pages claimed by a worker right now (in progress under a lease)."""


@dataclass(frozen=True)
class CallbackTask:
    """A finished job whose completion notification is due."""

    job_id: str
    url: str
    attempts: int
