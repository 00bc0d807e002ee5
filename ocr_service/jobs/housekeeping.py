"""Periodic upkeep every replica runs beside its workers (all of it is safe to run on many at once).

- reclaim pages whose lease expired (their worker died) and fail jobs whose page used up its attempts;
- mirror the queue into the gauges (jobs by state, pages queued and in progress, oldest queued page);
- delete jobs whose results outlived `OCR_JOB_TTL_SECONDS` (input, results and events go with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ocr_service import metrics
from ocr_service.jobs.errors import StoreUnavailable
from ocr_service.jobs.store import JobStore

log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(
        self,
        store: JobStore,
        *,
        lease_seconds: float,
        max_attempts: int,
        ttl_seconds: float,
        stats_every: float = 5.0,
        cleanup_every: float = 60.0,
    ) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self.ttl_seconds = ttl_seconds
        self.reap_every = min(5.0, max(0.1, lease_seconds / 4))
        self.stats_every = stats_every
        self.cleanup_every = cleanup_every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self, *, stats: bool = True, cleanup: bool = True) -> None:
        outcome = await self.store.reap_expired_leases(self.max_attempts)
        if outcome.requeued or outcome.failed_jobs:
            metrics.JOB_LEASE_EXPIRATIONS.inc(outcome.requeued + outcome.failed_jobs)
            metrics.JOB_RETRIES.inc(outcome.requeued)
            log.info("reclaimed %d page(s) from lost workers; %d job(s) failed", outcome.requeued, outcome.failed_jobs)
        if stats:
            figures = await self.store.stats()
            for state, count in figures.jobs_by_state.items():
                metrics.JOBS.labels(state=state).set(count)
            metrics.JOB_QUEUE_DEPTH.set(figures.queued_pages)
            metrics.JOB_OLDEST_QUEUED_AGE.set(figures.oldest_queued_age_seconds)
            metrics.JOB_PAGES_IN_PROGRESS.set(figures.running_pages)
            metrics.JOB_BACKLOG.set(figures.queued_pages + figures.running_pages)
        if cleanup:
            deleted = await self.store.delete_expired(self.ttl_seconds)
            if deleted:
                log.info("deleted %d expired job(s)", deleted)

    async def _loop(self) -> None:
        last_stats = last_cleanup = 0.0
        while True:
            now = time.monotonic()
            want_stats = now - last_stats >= self.stats_every
            want_cleanup = now - last_cleanup >= self.cleanup_every
            try:
                await self.run_once(stats=want_stats, cleanup=want_cleanup)
                last_stats = now if want_stats else last_stats
                last_cleanup = now if want_cleanup else last_cleanup
            except StoreUnavailable as exc:
                metrics.JOB_STORE_ERRORS.inc()
                log.debug("housekeeping skipped, job store unavailable: %s", exc.detail)
            except Exception:
                log.exception("job housekeeping failed; retrying")
            await asyncio.sleep(self.reap_every)
