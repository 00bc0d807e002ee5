"""`JobRuntime`: the jobs layer assembled for one replica, with the operations the HTTP routes call.

It owns the store (PostgreSQL from `OCR_DATABASE_URL`, else SQLite under `OCR_DATA_DIR`, each
with its change feed: see `changes`), the page workers (woken by the feed when a page becomes
claimable on any replica), housekeeping and the callback dispatcher, and it talks to the engine only
through the pipeline's per-page API: `inspect` at submission (so a bad document is a 4xx
then, not a failed job later), `run_page` in the workers, `combine` when a result is fetched.
Pages are stored as their JSON model plus one rendered part per EAGER format, so those can be
fetched later and merged without recognising again. The searchable PDF is rendered LATER
(`LAZY_FORMATS`): it embeds the page image, and rendering it was the one format with a cost
worth saving: CPU per paragraph-crop page, 2 workers, 3 interleaved rounds of 12 pages, best
round: 322 ms with every format, 290 ms without the PDF, 282 ms for text alone (so the other
formats and the word model cost ~3%, the PDF ~10%), paid by every job page although most clients
never ask for it. The first `GET .../result?format=pdf` recognises the job's pages once more with the
PDF renderer (same engine, options and pages, so the same text), stores those parts beside the
others and answers; later fetches (on any replica) merge the stored parts.

Every operation takes the caller's `owner` (the opaque id of its API key; None when
authentication is off): a job another owner created is "not found", never "forbidden", so its
existence does not leak.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from ocr_service import metrics
from ocr_service.cache import ResultCache, engine_version, mark_cached, result_key
from ocr_service.deadline import Deadline
from ocr_service.engine.model import PageResult
from ocr_service.jobs.callbacks import CallbackDispatcher, check_callback_url
from ocr_service.jobs.changes import FINAL_KINDS, WORK_KINDS, PollIntervals
from ocr_service.jobs.errors import JobAlreadyFinished, JobNotFinished, JobNotFound
from ocr_service.jobs.housekeeping import Housekeeping
from ocr_service.jobs.models import ALL_FORMATS, Job, JobStatus, NewJob
from ocr_service.jobs.postgres import PostgresDatabase
from ocr_service.jobs.sqlite import SqliteDatabase
from ocr_service.jobs.sqlstore import SqlJobStore
from ocr_service.jobs.store import JobStore
from ocr_service.jobs.worker import JobWorkers
from ocr_service.options import MEDIA_TYPES, OcrOptions, OutputFormat
from ocr_service.pipeline import OcrPipeline, PageOutcome
from ocr_service.settings import Settings

log = logging.getLogger(__name__)

LAZY_FORMATS = frozenset({OutputFormat.PDF})
"""Formats a job page does not render when it is recognised, only when a client first asks (see above)."""
EAGER_FORMATS = frozenset(ALL_FORMATS) - LAZY_FORMATS
PAGE_MODEL = "page"
"""The stored part holding a page's JSON model (the other parts are named by output format)."""
SQLITE_FILE = "jobs.sqlite3"
WORKER_POLL = PollIntervals(fallback=0.5, live=3.0)
"""How often idle job workers look for a page on their own. While the change feed is live they are
woken for every new or returned page, so the poll is only the safety net for a lost notification."""
CANCEL_KINDS = frozenset({"cancelled"})
CALLBACK_POLL = PollIntervals(fallback=1.0, live=5.0)
"""How often the callback dispatcher looks for due callbacks on its own. A job's final event wakes
it, so while the feed is live the poll only serves retries (due 2 s, 4 s, ... after a failure)."""


def open_store(settings: Settings) -> JobStore:
    """PostgreSQL when `OCR_DATABASE_URL` is set, else the embedded SQLite file under the data dir."""
    if settings.database_url:
        return SqlJobStore(PostgresDatabase(settings.database_url))
    return SqlJobStore(SqliteDatabase(Path(settings.data_dir) / SQLITE_FILE))


def page_parts(outcome: PageOutcome) -> dict[str, bytes]:
    """A recognised page as stored: its model as JSON plus every rendered format."""
    parts = {PAGE_MODEL: json.dumps(outcome.page.to_json(), separators=(",", ":")).encode()}
    parts.update({fmt.value: body for fmt, body in outcome.parts.items()})
    return parts


TITLED_FORMATS = frozenset({OutputFormat.HOCR, OutputFormat.ALTO})
"""Formats whose merged result carries the document's title."""


class JobRuntime:
    """Start with `start()` after the pipeline, stop with `stop()` before it."""

    def __init__(
        self,
        settings: Settings,
        pipeline: OcrPipeline,
        cache: ResultCache,
        *,
        store: JobStore | None = None,
        callback_backoff_seconds: float = 2.0,
        run_workers: bool | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.cache = cache
        self.store = store or open_store(settings)
        self.callback_backoff_seconds = callback_backoff_seconds
        self.run_workers = settings.job_workers_enabled if run_workers is None else run_workers
        """False on API-only replicas (`OCR_JOB_WORKERS_ENABLED=false`): jobs are stored and served, not claimed."""
        self.workers: JobWorkers | None = None
        self.housekeeping: Housekeeping | None = None
        self.callbacks: CallbackDispatcher | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    async def start(self) -> None:
        await self.store.open()
        settings = self.settings
        self.housekeeping = Housekeeping(
            self.store,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
            ttl_seconds=settings.job_ttl_seconds,
        )
        self.housekeeping.start()
        self.callbacks = CallbackDispatcher(
            self.store,
            secret=settings.callback_secret,
            allowed_hosts=settings.callback_allowed_hosts,
            poll_seconds=lambda: CALLBACK_POLL.now(self.store.changes),
            backoff_base=self.callback_backoff_seconds,
        )
        self.callbacks.start()
        self._unsubscribe.append(self.store.changes.on_events(FINAL_KINDS, self.callbacks.wake))
        if self.run_workers:
            self.workers = JobWorkers(
                self.store,
                self._recognize,
                self.cache,
                engine_version=engine_version(self.pipeline.engine_info()),
                concurrency=settings.job_workers or self.pipeline.stats().workers or 1,
                lease_seconds=settings.job_lease_seconds,
                max_attempts=settings.job_max_attempts,
                poll_seconds=lambda: WORKER_POLL.now(self.store.changes),
            )
            self.workers.start()
            metrics.JOB_WORKER_CAPACITY.set(self.workers.concurrency)
            self._unsubscribe.append(self.store.changes.on_events(WORK_KINDS, self.workers.wake))
            # A job cancelled on any replica: pages of it held here stop now, not at the next heartbeat.
            self._unsubscribe.append(self.store.changes.on_events(CANCEL_KINDS, self.workers.recheck))
        else:
            metrics.JOB_WORKER_CAPACITY.set(0)
        log.info("jobs ready on %s (%d workers)", self.store.backend, self.workers.concurrency if self.workers else 0)

    async def stop(self, grace_seconds: float = 0.0) -> None:
        while self._unsubscribe:
            self._unsubscribe.pop()()
        if self.workers is not None:
            await self.workers.stop(grace_seconds)
        if self.callbacks is not None:
            await self.callbacks.stop()
        if self.housekeeping is not None:
            await self.housekeeping.stop()
        await self.store.close()

    async def _recognize(self, data: bytes, page_number: int, options: OcrOptions) -> Mapping[str, bytes]:
        outcome = await self.pipeline.run_page(
            data, page_number, options, set(EAGER_FORMATS), timeout=self.settings.timeout_seconds
        )
        return page_parts(outcome)

    # -- what the routes call -----------------------------------------------------------------

    async def submit(
        self,
        data: bytes,
        options: OcrOptions,
        *,
        filename: str = "",
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
    ) -> tuple[Job, bool]:
        """Validate and store a job; (job, False) when `owner` sent an identical request with `idempotency_key`."""
        options = self.pipeline.validate(options)
        if callback_url is not None:
            check_callback_url(callback_url, self.settings.callback_allowed_hosts)
        deadline = Deadline.after(self.settings.timeout_seconds)
        info = await self.pipeline.offload(self.pipeline.inspect, data, options, deadline, deadline=deadline)
        new = NewJob(data, options, info.pages, filename, callback_url, idempotency_key, info.sha256, owner)
        job, created = await self.store.create_job(new)
        if created and self.workers is not None:
            self.workers.wake()
        return job, created

    async def get(self, job_id: str, owner: str | None = None) -> Job:
        job = await self.store.get_job(job_id, owner)
        if job is None:
            raise JobNotFound(f"No job {job_id!r} (unknown, or deleted after its retention period).")
        return job

    async def cancel(self, job_id: str, owner: str | None = None) -> Job:
        job = await self.store.cancel_job(job_id, owner)
        if job is None:
            raise JobNotFound(f"No job {job_id!r} (unknown, or deleted after its retention period).")
        if job.status is not JobStatus.CANCELLED:
            raise JobAlreadyFinished(f"Job {job_id} already {job.status.value}; only queued or running jobs cancel.")
        if self.workers is not None:
            self.workers.stop_job(job.id)  # its pages in progress here stop now (their recognition too)
        if self.callbacks is not None:
            self.callbacks.wake()
        return job

    async def result(self, job_id: str, fmt: OutputFormat, owner: str | None = None) -> tuple[Job, bytes, str]:
        """The merged result in `fmt` (same shape as the sync answer); 409 unless the job succeeded."""
        job = await self.get(job_id, owner)
        if job.status is not JobStatus.SUCCEEDED:
            reason = {
                JobStatus.QUEUED: "is still queued",
                JobStatus.RUNNING: f"is running ({job.pages_done}/{job.pages_total} pages done)",
                JobStatus.FAILED: "failed; see its `error`",
                JobStatus.CANCELLED: "was cancelled",
            }[job.status]
            raise JobNotFinished(f"Job {job_id} {reason}; a result exists only once it has succeeded.")
        options = job.options
        # hOCR and ALTO name the document (the upload's filename): keyed apart from /v1/ocr's "document".
        variant = f"{fmt.value}:{job.filename}" if job.filename and fmt in TITLED_FORMATS else fmt.value
        key = result_key(job.document_sha256, options, variant, engine_version(self.pipeline.engine_info()))
        body = await self.cache.get(key)
        if body is None:
            body = await self._combine(job, fmt)
            await self.cache.put(key, body)
        return job, mark_cached(body, fmt, job.cached), MEDIA_TYPES[fmt]

    async def _combine(self, job: Job, fmt: OutputFormat) -> bytes:
        models = await self.store.page_results(job.id, PAGE_MODEL)
        parts = await self.store.page_results(job.id, fmt.value) if fmt is not OutputFormat.JSON else None
        if models is not None and parts is None and fmt in LAZY_FORMATS:
            parts = await self._render_later(job, fmt, [int(json.loads(model)["number"]) for model in models])
        if models is None or (fmt is not OutputFormat.JSON and parts is None):
            raise JobNotFinished(f"Job {job.id}'s result is no longer stored.")
        pages = [
            PageOutcome(PageResult.from_json(json.loads(model)), {fmt: parts[i]} if parts is not None else {})
            for i, model in enumerate(models)
        ]
        merge = functools.partial(
            self.pipeline.combine,
            pages,
            fmt,
            language=job.options.lang,
            sha256=job.document_sha256,
            title=job.filename or "document",
        )
        return await self.pipeline.offload(merge)

    async def _render_later(self, job: Job, fmt: OutputFormat, numbers: list[int]) -> list[bytes] | None:
        """Recognise the job's pages again rendering `fmt` (see the module docstring) and store the parts."""
        data = await self.store.load_input(job.id)
        if data is None:
            return None
        options = dataclasses.replace(job.options, pages=None)
        timeout = self.settings.timeout_seconds
        outcomes = await asyncio.gather(
            *(self.pipeline.run_page(data, n, options, {fmt}, timeout=timeout) for n in numbers)
        )
        parts = [outcome.parts[fmt] for outcome in outcomes]
        await self.store.add_page_results(job.id, fmt.value, parts)
        return parts

    async def check_store(self) -> None:
        """Readiness: the job store answers (503 names it otherwise)."""
        await self.store.ping()
