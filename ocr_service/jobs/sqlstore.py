"""`SqlJobStore`: the job store's semantics, written once over a small database interface.

The SQL is shared by PostgreSQL and SQLite. Statements use `$n` parameters and a few
tokens that each `Database` translates: `{now}` (the database's clock, so leases agree across
replicas), `SECONDS($n)` (a duration), `{for_update}` and `{skip_locked}` (row locks; SQLite
holds a database lock for the whole transaction instead).

Locking order: a transaction that touches a job and its pages locks the job row first, then
pages. Claiming locks only a page and marks the job running in a second transaction, so no two
transactions ever wait on each other in opposite orders. Every move to a final state is an
`UPDATE ... WHERE status IN ('queued', 'running')` inside the transaction holding the job row,
so a job reaches exactly one final state and records exactly one final event.

Every event of a job is inserted by a transaction that holds that job's row lock (creating,
marking running, completing, failing, reclaiming, cancelling all lock or update the job row),
so a job's event ids are assigned in commit order: a reader following `id > last_seen` (the
SSE stream) never skips an event that commits late. Every event is also announced through the
transaction's `notify` (delivered only at commit), which wakes SSE streams and, for `queued` and
`retry`, idle job workers on every replica (`changes`).

Ownership: a job created through an API key carries that key's opaque owner id; reads and
cancels that name an owner see only that owner's jobs and ownerless ones (created without
authentication, or before jobs had owners), and answer None for the rest, exactly as for an
unknown id, so a caller cannot tell another tenant's job from a missing one. Reads without an
owner (authentication off) see every job. The Idempotency-Key is unique per owner.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from ocr_service.jobs.changes import JobChanges
from ocr_service.jobs.errors import IdempotencyConflict
from ocr_service.jobs.models import (
    CallbackTask,
    ClaimedPage,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    QueueStats,
    ReapOutcome,
    options_from_json,
    options_to_json,
)

Row = Mapping[str, Any]

NO_OWNER = ""
"""How the `owner` column spells "created without authentication" (`schema` says why not NULL)."""


class Transaction(Protocol):
    """Statements inside one database transaction (committed when the context exits cleanly)."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None: ...

    async def notify(self, job_id: str, kind: str) -> None:
        """Announce a job event to the database's `changes` once (and only if) this transaction commits."""


class Database(Protocol):
    """What `SqlJobStore` needs from PostgreSQL or SQLite."""

    backend: str
    changes: JobChanges
    """Where committed job events are announced (in-process for SQLite, via LISTEN/NOTIFY for PostgreSQL)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction; raises `StoreUnavailable` if the database cannot be reached."""

    def timestamp(self, value: Any) -> datetime:
        """A timestamp column's value as an aware UTC datetime."""


def _problem_for_page(page_number: int, problem: dict[str, Any]) -> dict[str, Any]:
    detail = str(problem.get("detail", "recognition failed"))
    return {**problem, "detail": f"page {page_number}: {detail}", "page": page_number}


class SqlJobStore:
    """The `JobStore` for any `Database`."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self.backend = database.backend
        self.changes = database.changes

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        async with self.db.transaction() as tx:
            await tx.fetchrow("SELECT 1 AS ok")

    # -- rows -> values -------------------------------------------------------------------

    def _ts(self, value: Any) -> datetime | None:
        return None if value is None else self.db.timestamp(value)

    def _job(self, row: Row) -> Job:
        created = self.db.timestamp(row["created_at"])
        return Job(
            id=row["id"],
            status=JobStatus(row["status"]),
            created_at=created,
            updated_at=self.db.timestamp(row["updated_at"]),
            started_at=self._ts(row["started_at"]),
            finished_at=self._ts(row["finished_at"]),
            options=options_from_json(row["options"]),
            filename=row["filename"] or "",
            document_sha256=row["document_sha256"],
            pages_total=int(row["pages_total"]),
            pages_done=int(row["pages_done"]),
            cached_pages=int(row["cached_pages"]),
            error=json.loads(row["error"]) if row["error"] else None,
            callback_url=row["callback_url"],
            callback_state=row["callback_state"],
            owner=row["owner"] or None,
        )

    @staticmethod
    async def _event(tx: Transaction, job_id: str, kind: str, data: dict[str, Any]) -> None:
        await tx.execute(
            "INSERT INTO ocr_job_events (job_id, at, kind, data) VALUES ($1, {now}, $2, $3)",
            job_id,
            kind,
            json.dumps(data, sort_keys=True),
        )
        await tx.notify(job_id, kind)

    async def _finish(self, tx: Transaction, job_id: str, status: JobStatus, error: dict[str, Any] | None) -> bool:
        """The one transition to a final state; False if the job had already left the active states."""
        row = await tx.fetchrow(
            """UPDATE ocr_jobs SET status = $2, finished_at = {now}, updated_at = {now}, error = $3,
                   callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END,
                   callback_next_at = {now}
               WHERE id = $1 AND status IN ('queued', 'running')
               RETURNING pages_done, pages_total""",
            job_id,
            status.value,
            json.dumps(error) if error is not None else None,
        )
        if row is None:
            return False
        await tx.execute(
            "UPDATE ocr_job_pages SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL "
            "WHERE job_id = $1 AND state IN ('queued', 'running')",
            job_id,
        )
        if status is not JobStatus.SUCCEEDED:
            # A succeeded job keeps its document until retention ends: formats rendered on first
            # request (the searchable PDF, see jobs/runtime.py) recognise it again.
            await tx.execute("DELETE FROM ocr_job_inputs WHERE job_id = $1", job_id)
        data: dict[str, Any] = {
            "status": status.value,
            "pages_done": int(row["pages_done"]),
            "pages_total": int(row["pages_total"]),
        }
        if error is not None:
            data["error"] = error
        await self._event(tx, job_id, status.value, data)
        return True

    async def _lock_job(self, tx: Transaction, job_id: str) -> Row | None:
        return await tx.fetchrow("SELECT * FROM ocr_jobs WHERE id = $1 {for_update}", job_id)

    @staticmethod
    async def _visible_job(tx: Transaction, job_id: str, owner: str | None, *, lock: bool = False) -> Row | None:
        """The job row if `owner` may see it (None: anyone may); locked for update with `lock`."""
        visible = "SELECT * FROM ocr_jobs WHERE id = $1 AND (CAST($2 AS text) IS NULL OR owner IN ($2, $3))"
        return await tx.fetchrow(visible + (" {for_update}" if lock else ""), job_id, owner, NO_OWNER)

    # -- submission and reads -------------------------------------------------------------

    async def create_job(self, new: NewJob) -> tuple[Job, bool]:
        fingerprint = new.fingerprint
        owner = new.owner or NO_OWNER
        by_key = "SELECT * FROM ocr_jobs WHERE owner = $1 AND idempotency_key = $2"
        async with self.db.transaction() as tx:
            if new.idempotency_key is not None:
                existing = await tx.fetchrow(by_key, owner, new.idempotency_key)
                if existing is not None:
                    return self._same_request(existing, fingerprint), False
            job_id = str(uuid.uuid4())
            row = await tx.fetchrow(
                """INSERT INTO ocr_jobs (id, status, created_at, updated_at, options, filename, document_sha256,
                       pages_total, idempotency_key, request_hash, callback_url, owner)
                   VALUES ($1, 'queued', {now}, {now}, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (owner, idempotency_key) DO NOTHING
                   RETURNING *""",
                job_id,
                options_to_json(new.options),
                new.filename,
                new.document_sha256,
                len(new.page_numbers),
                new.idempotency_key,
                fingerprint,
                new.callback_url,
                owner,
            )
            if row is None:  # a concurrent request of the same owner with the same key won the insert
                existing = await tx.fetchrow(by_key, owner, new.idempotency_key)
                assert existing is not None
                return self._same_request(existing, fingerprint), False
            await tx.execute("INSERT INTO ocr_job_inputs (job_id, data) VALUES ($1, $2)", job_id, new.document)
            await tx.executemany(
                "INSERT INTO ocr_job_pages (job_id, idx, page_number, state, queued_at) "
                "VALUES ($1, $2, $3, 'queued', {now})",
                [(job_id, idx, number) for idx, number in enumerate(new.page_numbers)],
            )
            await self._event(
                tx, job_id, "queued", {"status": "queued", "pages_done": 0, "pages_total": len(new.page_numbers)}
            )
            return self._job(row), True

    def _same_request(self, row: Row, fingerprint: str) -> Job:
        if row["request_hash"] != fingerprint:
            raise IdempotencyConflict(
                f"Idempotency-Key was first used for job {row['id']} with a different document, options or "
                "callback_url; use a new key for a new request.",
                param="Idempotency-Key",
            )
        return self._job(row)

    async def get_job(self, job_id: str, owner: str | None = None) -> Job | None:
        async with self.db.transaction() as tx:
            row = await self._visible_job(tx, job_id, owner)
        return None if row is None else self._job(row)

    async def list_jobs(
        self, owner: str | None, *, status: JobStatus | None = None, after: str | None = None, limit: int = 20
    ) -> tuple[list[Job], bool] | None:
        """Newest first, `limit` at most, starting after the job `after` (the previous page's last).

        With an `owner`, only that owner's jobs: a listing is "my jobs", so jobs created without
        authentication are not in any key's list (they stay readable by id). Returns (jobs, more),
        or None when `after` names no job this caller could list (unknown, expired or another's).
        Ordered by (created_at, id): jobs created within one tick of the database's clock (1 ms on
        SQLite, 1 us on PostgreSQL) come in id order, and every job still appears exactly once.
        """
        async with self.db.transaction() as tx:
            if after is not None:
                anchor = await tx.fetchrow(
                    "SELECT id FROM ocr_jobs WHERE id = $2 AND (CAST($1 AS text) IS NULL OR owner = $1)", owner, after
                )
                if anchor is None:
                    return None
            rows = await tx.fetch(
                """SELECT * FROM ocr_jobs
                    WHERE (CAST($1 AS text) IS NULL OR owner = $1)
                      AND (CAST($2 AS text) IS NULL OR status = $2)
                      AND (CAST($3 AS text) IS NULL
                           OR (created_at, id) < (SELECT created_at, id FROM ocr_jobs WHERE id = $3))
                    ORDER BY created_at DESC, id DESC
                    LIMIT $4""",
                owner,
                None if status is None else status.value,
                after,
                limit + 1,
            )
        return [self._job(row) for row in rows[:limit]], len(rows) > limit

    async def cancel_job(self, job_id: str, owner: str | None = None) -> Job | None:
        async with self.db.transaction() as tx:
            row = await self._visible_job(tx, job_id, owner, lock=True)
            if row is None:
                return None
            await self._finish(tx, job_id, JobStatus.CANCELLED, None)
            row = await tx.fetchrow("SELECT * FROM ocr_jobs WHERE id = $1", job_id)
        assert row is not None
        return self._job(row)

    async def load_input(self, job_id: str) -> bytes | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("SELECT data FROM ocr_job_inputs WHERE job_id = $1", job_id)
        return None if row is None else bytes(row["data"])

    async def page_results(self, job_id: str, fmt: str) -> list[bytes] | None:
        async with self.db.transaction() as tx:
            job = await tx.fetchrow("SELECT status, pages_total FROM ocr_jobs WHERE id = $1", job_id)
            if job is None or job["status"] != JobStatus.SUCCEEDED:
                return None
            rows = await tx.fetch(
                "SELECT body FROM ocr_job_results WHERE job_id = $1 AND format = $2 ORDER BY idx", job_id, fmt
            )
        if len(rows) != int(job["pages_total"]):
            return None
        return [bytes(r["body"]) for r in rows]

    async def add_page_results(self, job_id: str, fmt: str, bodies: Sequence[bytes]) -> None:
        async with self.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO ocr_job_results (job_id, idx, format, body) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (job_id, idx, format) DO NOTHING",
                [(job_id, idx, fmt, body) for idx, body in enumerate(bodies)],
            )

    async def events_since(self, job_id: str, after_id: int, limit: int = 100) -> list[JobEvent]:
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT id, job_id, at, kind, data FROM ocr_job_events "
                "WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                job_id,
                after_id,
                limit,
            )
        return [
            JobEvent(int(r["id"]), r["job_id"], self.db.timestamp(r["at"]), r["kind"], json.loads(r["data"]))
            for r in rows
        ]

    # -- work distribution ----------------------------------------------------------------

    async def claim_page(self, owner: str, lease_seconds: float) -> ClaimedPage | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                """WITH next AS (
                       SELECT job_id, idx FROM ocr_job_pages WHERE state = 'queued'
                       ORDER BY queued_at, job_id, idx LIMIT 1 {skip_locked}
                   )
                   UPDATE ocr_job_pages SET state = 'running', attempts = attempts + 1, lease_owner = $1,
                       lease_expires_at = {now} + SECONDS($2), started_at = {now}
                   WHERE job_id = (SELECT job_id FROM next) AND idx = (SELECT idx FROM next)
                   RETURNING job_id, idx, page_number, attempts""",
                owner,
                lease_seconds,
            )
        if row is None:
            return None
        job_id = row["job_id"]
        async with self.db.transaction() as tx:
            started = await tx.fetchrow(
                "UPDATE ocr_jobs SET status = 'running', started_at = {now}, updated_at = {now} "
                "WHERE id = $1 AND status = 'queued' RETURNING pages_total",
                job_id,
            )
            if started is not None:
                await self._event(
                    tx, job_id, "running", {"status": "running", "pages_done": 0, "pages_total": started["pages_total"]}
                )
            job = await tx.fetchrow("SELECT options, document_sha256, pages_total FROM ocr_jobs WHERE id = $1", job_id)
        assert job is not None
        return ClaimedPage(
            job_id=job_id,
            index=int(row["idx"]),
            page_number=int(row["page_number"]),
            attempt=int(row["attempts"]),
            options=options_from_json(job["options"]),
            document_sha256=job["document_sha256"],
            pages_total=int(job["pages_total"]),
        )

    async def renew_lease(self, page: ClaimedPage, owner: str, lease_seconds: float) -> bool:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                """UPDATE ocr_job_pages SET lease_expires_at = {now} + SECONDS($4)
                   WHERE job_id = $1 AND idx = $2 AND state = 'running' AND lease_owner = $3 AND attempts = $5
                   RETURNING idx""",
                page.job_id,
                page.index,
                owner,
                lease_seconds,
                page.attempt,
            )
        return row is not None

    async def _lock_own_page(self, tx: Transaction, page: ClaimedPage, owner: str) -> Row | None:
        return await tx.fetchrow(
            """SELECT attempts FROM ocr_job_pages
               WHERE job_id = $1 AND idx = $2 AND state = 'running' AND lease_owner = $3 AND attempts = $4
               {for_update}""",
            page.job_id,
            page.index,
            owner,
            page.attempt,
        )

    async def complete_page(self, page: ClaimedPage, owner: str, results: Mapping[str, bytes], cached: bool) -> bool:
        async with self.db.transaction() as tx:
            job = await self._lock_job(tx, page.job_id)
            if job is None or job["status"] not in ("queued", "running"):
                return False
            if await self._lock_own_page(tx, page, owner) is None:
                return False
            await tx.execute(
                """UPDATE ocr_job_pages SET state = 'done', finished_at = {now}, lease_owner = NULL,
                       lease_expires_at = NULL, cached = $3, finished_by = $4
                   WHERE job_id = $1 AND idx = $2""",
                page.job_id,
                page.index,
                int(cached),
                owner,
            )
            await tx.executemany(
                "INSERT INTO ocr_job_results (job_id, idx, format, body) VALUES ($1, $2, $3, $4)",
                [(page.job_id, page.index, fmt, body) for fmt, body in results.items()],
            )
            progress = await tx.fetchrow(
                """UPDATE ocr_jobs SET pages_done = pages_done + 1, cached_pages = cached_pages + $2, updated_at = {now}
                   WHERE id = $1 RETURNING pages_done, pages_total""",
                page.job_id,
                int(cached),
            )
            assert progress is not None
            done, total = int(progress["pages_done"]), int(progress["pages_total"])
            await self._event(
                tx,
                page.job_id,
                "progress",
                {"status": "running", "pages_done": done, "pages_total": total, "page": page.page_number},
            )
            if done >= total:
                await self._finish(tx, page.job_id, JobStatus.SUCCEEDED, None)
        return True

    async def release_page(self, page: ClaimedPage, owner: str) -> bool:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                """UPDATE ocr_job_pages SET state = 'queued', attempts = attempts - 1, lease_owner = NULL,
                       lease_expires_at = NULL
                   WHERE job_id = $1 AND idx = $2 AND state = 'running' AND lease_owner = $3 AND attempts = $4
                   RETURNING idx""",
                page.job_id,
                page.index,
                owner,
                page.attempt,
            )
            if row is None:
                return False
            # `retry` is a work event: idle workers of every replica look for the page now.
            await self._event(tx, page.job_id, "retry", {"page": page.page_number, "attempts": page.attempt - 1})
        return True

    async def fail_page(
        self, page: ClaimedPage, owner: str, problem: dict[str, Any], retry: bool, max_attempts: int
    ) -> None:
        async with self.db.transaction() as tx:
            job = await self._lock_job(tx, page.job_id)
            if job is None or job["status"] not in ("queued", "running"):
                return
            own = await self._lock_own_page(tx, page, owner)
            if own is None:
                return
            if retry and int(own["attempts"]) < max_attempts:
                await tx.execute(
                    """UPDATE ocr_job_pages SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                           error = $3
                       WHERE job_id = $1 AND idx = $2""",
                    page.job_id,
                    page.index,
                    str(problem.get("detail", "")),
                )
                await self._event(
                    tx, page.job_id, "retry", {"page": page.page_number, "attempts": int(own["attempts"])}
                )
                return
            await tx.execute(
                "UPDATE ocr_job_pages SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, error = $3 "
                "WHERE job_id = $1 AND idx = $2",
                page.job_id,
                page.index,
                str(problem.get("detail", "")),
            )
            await self._finish(tx, page.job_id, JobStatus.FAILED, _problem_for_page(page.page_number, problem))

    async def reap_expired_leases(self, max_attempts: int) -> ReapOutcome:
        async with self.db.transaction() as tx:
            expired = await tx.fetch(
                "SELECT job_id, idx FROM ocr_job_pages WHERE state = 'running' AND lease_expires_at < {now} LIMIT 100"
            )
        requeued = failed = 0
        for candidate in expired:
            async with self.db.transaction() as tx:
                job = await self._lock_job(tx, candidate["job_id"])
                if job is None or job["status"] not in ("queued", "running"):
                    continue
                page = await tx.fetchrow(
                    """SELECT page_number, attempts FROM ocr_job_pages
                       WHERE job_id = $1 AND idx = $2 AND state = 'running' AND lease_expires_at < {now}
                       {for_update}""",
                    candidate["job_id"],
                    candidate["idx"],
                )
                if page is None:
                    continue
                attempts = int(page["attempts"])
                if attempts < max_attempts:
                    await tx.execute(
                        "UPDATE ocr_job_pages SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
                        "error = 'lease expired' WHERE job_id = $1 AND idx = $2",
                        candidate["job_id"],
                        candidate["idx"],
                    )
                    await self._event(
                        tx, candidate["job_id"], "retry", {"page": int(page["page_number"]), "attempts": attempts}
                    )
                    requeued += 1
                    continue
                await tx.execute(
                    "UPDATE ocr_job_pages SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, "
                    "error = 'lease expired' WHERE job_id = $1 AND idx = $2",
                    candidate["job_id"],
                    candidate["idx"],
                )
                problem = {
                    "type": "https://catalyst-ocr.dev/problems/page-abandoned",
                    "title": "Page kept crashing its worker",
                    "status": 422,
                    "detail": f"its worker was lost {attempts} times (crash, OOM or time-out); giving up after "
                    f"{max_attempts} attempts",
                }
                if await self._finish(
                    tx, candidate["job_id"], JobStatus.FAILED, _problem_for_page(int(page["page_number"]), problem)
                ):
                    failed += 1
        return ReapOutcome(requeued=requeued, failed_jobs=failed)

    # -- housekeeping ---------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        async with self.db.transaction() as tx:
            states = await tx.fetch("SELECT status, count(*) AS n FROM ocr_jobs GROUP BY status")
            queued = await tx.fetchrow(
                "SELECT count(*) AS n, min(queued_at) AS oldest, {now} AS now FROM ocr_job_pages WHERE state = 'queued'"
            )
            running = await tx.fetchrow("SELECT count(*) AS n FROM ocr_job_pages WHERE state = 'running'")
        assert queued is not None
        age = 0.0
        if queued["oldest"] is not None:
            age = max(0.0, (self.db.timestamp(queued["now"]) - self.db.timestamp(queued["oldest"])).total_seconds())
        by_state = {status.value: 0 for status in JobStatus}
        by_state.update({r["status"]: int(r["n"]) for r in states})
        return QueueStats(
            jobs_by_state=by_state,
            queued_pages=int(queued["n"]),
            oldest_queued_age_seconds=age,
            running_pages=int(running["n"]) if running is not None else 0,
        )

    async def delete_expired(self, ttl_seconds: float) -> int:
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                """DELETE FROM ocr_jobs WHERE id IN (
                       SELECT id FROM ocr_jobs WHERE finished_at IS NOT NULL AND finished_at < {now} - SECONDS($1)
                       AND (callback_state IS NULL OR callback_state <> 'pending') LIMIT 500)
                   RETURNING id""",
                ttl_seconds,
            )
        return len(rows)

    async def claim_callback(self, lease_seconds: float) -> CallbackTask | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                """WITH next AS (
                       SELECT id FROM ocr_jobs WHERE callback_state = 'pending' AND callback_next_at <= {now}
                       ORDER BY callback_next_at LIMIT 1 {skip_locked}
                   )
                   UPDATE ocr_jobs SET callback_next_at = {now} + SECONDS($1), callback_attempts = callback_attempts + 1
                   WHERE id = (SELECT id FROM next)
                   RETURNING id, callback_url, callback_attempts""",
                lease_seconds,
            )
        if row is None:
            return None
        return CallbackTask(job_id=row["id"], url=row["callback_url"], attempts=int(row["callback_attempts"]))

    async def finish_callback(self, job_id: str, delivered: bool, retry_in: float | None, error: str | None) -> None:
        state = "delivered" if delivered else ("pending" if retry_in is not None else "failed")
        async with self.db.transaction() as tx:
            await tx.execute(
                """UPDATE ocr_jobs SET callback_state = $2, callback_last_error = $3,
                       callback_next_at = {now} + SECONDS($4)
                   WHERE id = $1 AND callback_state = 'pending'""",
                job_id,
                state,
                error,
                retry_in or 0.0,
            )
