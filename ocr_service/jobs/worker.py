"""Job workers: claim a page, recognise it under a renewed lease, store every format, repeat.

`JobWorkers` runs N of these loops per replica (`OCR_JOB_WORKERS`, 0 = the engine pool size).
Each holds at most one page. While the engine works, a heartbeat renews the lease every third
of its length; if renewal fails (the job was cancelled, or the lease expired and another worker
took the page) the result is abandoned, so a late worker can never overwrite a newer attempt.
A cancel does not wait for the next heartbeat: `stop_job` (this replica's DELETE) abandons the
job's pages at once, and `recheck` (any replica's `cancelled` event, from the change feed) renews
every held lease now. Abandoning a page cancels its recognition in the engine pool, which stops
Tesseract within a word (see `engine/pool.py`), so the worker is free within a second.
Pages are looked up in the result cache first (sha256 of the document + page + options +
engine version), so a document submitted twice is not recognised twice.

On `stop` (SIGTERM, e.g. a scale-in) workers stop claiming, finish their page within the grace
period or release it back to the queue.

Errors: a problem in the document itself (4xx `OcrError`: undecodable page, too many pixels)
fails the job at once with that problem; anything else (time-out, engine crash) is retried
until `OCR_JOB_MAX_ATTEMPTS`, then fails the job naming the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from ocr_service import metrics
from ocr_service.cache import ResultCache, result_key
from ocr_service.errors import OcrError
from ocr_service.jobs.errors import StoreUnavailable
from ocr_service.jobs.models import ClaimedPage
from ocr_service.jobs.store import JobStore
from ocr_service.options import OcrOptions

log = logging.getLogger(__name__)

RecognizePage = Callable[[bytes, int, OcrOptions], Awaitable[Mapping[str, bytes]]]
"""Recognise one page of a document and render it in every output format (format -> body)."""

STORE_RETRY_SECONDS = 1.0


def replica_id() -> str:
    """Names this process in lease owners, so a stuck page points at a host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def pack_page(results: Mapping[str, bytes]) -> bytes:
    """One page's bodies as a single cache value: a JSON header of sizes, then the bodies."""
    header = json.dumps([[fmt, len(body)] for fmt, body in results.items()]).encode()
    return header + b"\n" + b"".join(results.values())


def unpack_page(value: bytes) -> dict[str, bytes]:
    header, _, rest = value.partition(b"\n")
    results: dict[str, bytes] = {}
    offset = 0
    for fmt, size in json.loads(header):
        results[str(fmt)] = rest[offset : offset + int(size)]
        offset += int(size)
    if offset != len(rest):
        raise ValueError("corrupt cached page")
    return results


class JobWorkers:
    """The page workers of one replica, plus nothing else (housekeeping runs beside them)."""

    def __init__(
        self,
        store: JobStore,
        recognize: RecognizePage,
        cache: ResultCache,
        *,
        engine_version: str,
        concurrency: int,
        lease_seconds: float,
        max_attempts: int,
        poll_seconds: float | Callable[[], float] = 0.5,
        owner_prefix: str | None = None,
    ) -> None:
        self.store = store
        self.recognize = recognize
        self.cache = cache
        self.engine_version = engine_version
        self.concurrency = max(1, concurrency)
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.owner_prefix = owner_prefix or replica_id()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._inputs: OrderedDict[str, bytes] = OrderedDict()
        self._held: dict[str, tuple[str, asyncio.Event, asyncio.Event]] = {}
        """Pages in progress by worker: owner -> (job id, lease lost, re-check the lease now)."""
        self._stopping = False
        self.busy = 0
        self.idle = 0
        """Workers waiting for work right now (woken by `wake`, else after the poll interval)."""

    def start(self) -> None:
        """Start the loops (again, after `stop`: the queue is in the store, nothing is lost meanwhile)."""
        self._stopping = False
        for n in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._loop(f"{self.owner_prefix}-{n}"), name=f"job-worker-{n}"))

    def wake(self) -> None:
        """A page became claimable (submitted here, or announced by the change feed): idle workers look now."""
        self._wake.set()

    def stop_job(self, job_id: str) -> int:
        """The job was cancelled here: abandon its pages in progress now (returns how many)."""
        stopped = 0
        for held_job, lost, _ in list(self._held.values()):
            if held_job == job_id:
                lost.set()
                stopped += 1
        return stopped

    def recheck(self) -> None:
        """A job became final somewhere (e.g. cancelled on another replica): renew every held lease now."""
        for _, _, recheck in list(self._held.values()):
            recheck.set()

    def _poll_seconds(self) -> float:
        return self.poll_seconds() if callable(self.poll_seconds) else self.poll_seconds

    async def stop(self, grace_seconds: float = 0.0) -> None:
        """Stop claiming; wait up to `grace_seconds` for pages in progress, then release them.

        A released page is queued again at once, untried (its attempt is given back: a scale-in
        is not the page's fault), and keeps its place at the head of the queue. If the release
        cannot be written (store down), the page keeps its lease until it expires and is then
        reclaimed elsewhere, so stopping never loses work; a result is stored only under the
        lease, so it is never completed twice.
        """
        self._stopping = True
        self._wake.set()
        if grace_seconds > 0 and self._tasks:
            await asyncio.wait(self._tasks, timeout=grace_seconds)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, owner: str) -> None:
        while not self._stopping:
            # Cleared before the claim, not after: a wake-up that lands while the claim's query runs
            # (a page committed just too late for it) is kept, and the wait below returns at once.
            self._wake.clear()
            try:
                page = await self.store.claim_page(owner, self.lease_seconds)
            except StoreUnavailable as exc:
                metrics.JOB_STORE_ERRORS.inc()
                log.warning("job worker %s cannot reach the job store: %s", owner, exc.detail)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            except Exception:
                # Never let one unexpected error end this worker for the life of the replica.
                log.exception("job worker %s failed to claim a page; retrying", owner)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            if page is None:
                self.idle += 1
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    # that arrives as the wake-up completes, and stop() would wait for this loop.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll_seconds()):
                            await self._wake.wait()
                finally:
                    self.idle -= 1
                continue
            self.busy += 1
            try:
                await self._process(page, owner)
            except asyncio.CancelledError:
                # stop() after its grace period: hand the page back untried, so another worker takes it now.
                await self._release(page, owner)
                raise
            except StoreUnavailable as exc:
                # The lease runs out and the page is reclaimed once the store is back.
                metrics.JOB_STORE_ERRORS.inc()
                log.warning("job store lost while finishing page %d of job %s: %s", page.page_number, page.job_id, exc)
                await asyncio.sleep(STORE_RETRY_SECONDS)
            except Exception:
                log.exception("job worker %s failed on page %d of job %s", owner, page.page_number, page.job_id)
                await asyncio.sleep(STORE_RETRY_SECONDS)  # the page's lease expires and it is tried again
            finally:
                self.busy -= 1

    async def _release(self, page: ClaimedPage, owner: str) -> None:
        """Give an interrupted page back to the queue; if that fails, its lease expires and it is reclaimed."""
        try:
            released = await self.store.release_page(page, owner)
        except Exception as exc:  # never block a shutdown: the lease is the safety net
            log.warning(
                "page %d of job %s not released (%s); it returns when its lease expires",
                page.page_number,
                page.job_id,
                exc,
            )
            return
        if released:
            metrics.JOB_PAGES.labels(outcome="released").inc()
            log.info("page %d of job %s released for another worker (shutting down)", page.page_number, page.job_id)

    async def _document(self, job_id: str) -> bytes | None:
        if job_id in self._inputs:
            self._inputs.move_to_end(job_id)
            return self._inputs[job_id]
        data = await self.store.load_input(job_id)
        if data is not None:
            self._inputs[job_id] = data
            while len(self._inputs) > 4:
                self._inputs.popitem(last=False)
        return data

    async def _process(self, page: ClaimedPage, owner: str) -> None:
        data = await self._document(page.job_id)
        if data is None:
            return  # the job became final (cancelled) since the claim; the lease is already void
        lost, recheck = asyncio.Event(), asyncio.Event()
        self._held[owner] = (page.job_id, lost, recheck)
        heartbeat = asyncio.create_task(self._heartbeat(page, owner, lost, recheck))
        try:
            work = asyncio.create_task(self._results(page, data))
            lost_wait = asyncio.create_task(lost.wait())
            try:
                await asyncio.wait({work, lost_wait}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                work.cancel()  # asyncio.wait leaves its tasks running when it is cancelled itself
                lost_wait.cancel()
                raise
            lost_wait.cancel()
            if not work.done():
                work.cancel()
                log.info("page %d of job %s abandoned: lease lost or job cancelled", page.page_number, page.job_id)
                return
            try:
                results, cached = work.result()
            except OcrError as exc:
                await self._failed(page, owner, exc.to_problem(), retry=exc.status >= 500)
                return
            except Exception as exc:
                log.exception("page %d of job %s failed", page.page_number, page.job_id)
                problem = {
                    "type": "https://catalyst-ocr.dev/problems/recognition-failed",
                    "title": "Recognition failed",
                    "status": 500,
                    "detail": f"the engine failed on this page ({type(exc).__name__})",
                }
                await self._failed(page, owner, problem, retry=True)
                return
        finally:
            self._held.pop(owner, None)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if await self.store.complete_page(page, owner, results, cached):
            metrics.JOB_PAGES.labels(outcome="cached" if cached else "done").inc()

    async def _failed(self, page: ClaimedPage, owner: str, problem: dict[str, object], *, retry: bool) -> None:
        will_retry = retry and page.attempt < self.max_attempts
        await self.store.fail_page(page, owner, dict(problem), retry, self.max_attempts)
        if will_retry:
            metrics.JOB_RETRIES.inc()
            metrics.JOB_PAGES.labels(outcome="retried").inc()
        else:
            metrics.JOB_PAGES.labels(outcome="failed").inc()

    async def _results(self, page: ClaimedPage, data: bytes) -> tuple[Mapping[str, bytes], bool]:
        options = replace(page.options, pages=None)
        key = result_key(page.document_sha256, options, f"page:{page.page_number}", self.engine_version)
        cached = await self.cache.get(key)
        if cached is not None:
            with contextlib.suppress(ValueError):
                return unpack_page(cached), True
        results = await self.recognize(data, page.page_number, options)
        await self.cache.put(key, pack_page(results))
        return results, False

    async def _heartbeat(self, page: ClaimedPage, owner: str, lost: asyncio.Event, recheck: asyncio.Event) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await recheck.wait()
            recheck.clear()
            try:
                still_ours = await self.store.renew_lease(page, owner, self.lease_seconds)
            except StoreUnavailable:
                continue  # keep working; completion will tell whether the lease survived
            if not still_ours:
                lost.set()
                return
