"""The job store protocol: everything workers, HTTP routes and housekeeping need from storage.

`SqlJobStore` implements it once over two databases (`postgres.PostgresDatabase`,
`sqlite.SqliteDatabase`), so the embedded default and the multi-replica setup share one set
of semantics: leases, attempts, a single final transition per job. `open_store(settings)` picks
the database from the settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ocr_service.jobs.changes import JobChanges
from ocr_service.jobs.models import (
    CallbackTask,
    ClaimedPage,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    QueueStats,
    ReapOutcome,
)


class JobStore(Protocol):
    """Durable jobs. Methods raise `errors.StoreUnavailable` when the database cannot be reached."""

    backend: str
    """`postgresql` or `sqlite`, for logs and readiness."""
    changes: JobChanges
    """Committed job events, announced in-process (SSE streams and workers wait on it instead of polling)."""

    async def open(self) -> None:
        """Connect and apply pending migrations (safe when several replicas start at once)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers right now (readiness)."""

    async def create_job(self, new: NewJob) -> tuple[Job, bool]:
        """Store a queued job; with an `idempotency_key` its owner used before, return that job and False instead."""

    async def get_job(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job, or None if unknown or not visible to `owner` (see `SqlJobStore` for who sees what)."""

    async def list_jobs(
        self, owner: str | None, *, status: JobStatus | None = None, after: str | None = None, limit: int = 20
    ) -> tuple[list[Job], bool] | None:
        """`owner`'s jobs (every job when None), newest first, after the job `after`; (jobs, more), or None
        when `after` is no job of theirs."""

    async def cancel_job(self, job_id: str, owner: str | None = None) -> Job | None:
        """Move an active job to `cancelled`; a final job is returned unchanged; None if unknown or not `owner`'s."""

    async def load_input(self, job_id: str) -> bytes | None:
        """The submitted document, or None once the job is final or expired."""

    async def claim_page(self, owner: str, lease_seconds: float) -> ClaimedPage | None:
        """Take the oldest queued page under a lease, or None when there is none."""

    async def renew_lease(self, page: ClaimedPage, owner: str, lease_seconds: float) -> bool:
        """Extend the lease; False when it was lost (expired and reclaimed, or the job was cancelled)."""

    async def complete_page(self, page: ClaimedPage, owner: str, results: Mapping[str, bytes], cached: bool) -> bool:
        """Store the page's results; the last page finishes the job. False (nothing stored) if the lease was lost."""

    async def release_page(self, page: ClaimedPage, owner: str) -> bool:
        """Give a page this worker still holds back to the queue untried (its attempt is not counted).

        For a worker that is shutting down (SIGTERM on scale-in): the page is claimable at once by
        any other worker instead of after its lease expires, and the interruption is not the page's
        fault, so it must not use up its attempts. False if the lease was already lost.
        """

    async def fail_page(
        self, page: ClaimedPage, owner: str, problem: dict[str, Any], retry: bool, max_attempts: int
    ) -> None:
        """Give the page back for another attempt, or fail its job when `retry` is False or attempts ran out."""

    async def reap_expired_leases(self, max_attempts: int) -> ReapOutcome:
        """Requeue pages whose worker vanished; fail the job of a page that used up its attempts."""

    async def page_results(self, job_id: str, fmt: str) -> list[bytes] | None:
        """Per-page bodies of `fmt` in page order, or None if the job has no complete result."""

    async def add_page_results(self, job_id: str, fmt: str, bodies: Sequence[bytes]) -> None:
        """Store `fmt` for every page (in page order) of a succeeded job, rendered after it finished.

        Bodies already stored for a page are kept (two replicas may render the same format at once).
        """

    async def events_since(self, job_id: str, after_id: int, limit: int = 100) -> list[JobEvent]: ...

    async def stats(self) -> QueueStats: ...

    async def delete_expired(self, ttl_seconds: float) -> int:
        """Delete jobs (input, results, events) finished more than `ttl_seconds` ago; return how many."""

    async def claim_callback(self, lease_seconds: float) -> CallbackTask | None:
        """Take a due completion callback (hidden from other replicas for `lease_seconds`)."""

    async def finish_callback(self, job_id: str, delivered: bool, retry_in: float | None, error: str | None) -> None:
        """Record a delivery attempt: delivered, due again in `retry_in` seconds, or given up (None)."""
