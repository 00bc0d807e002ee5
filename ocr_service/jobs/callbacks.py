"""Completion callbacks: a signed JSON POST to `callback_url` when a job reaches a final state.

Delivery is durable and never blocks a job: the final transition marks the callback pending
in the store, and a dispatcher on every replica claims due callbacks (one replica per
callback at a time), POSTs them, and reschedules failures with exponential back-off until
`MAX_ATTEMPTS`. Receivers verify `X-Catalyst-Signature: sha256=<hex>`, the HMAC-SHA256 of
`"<X-Catalyst-Timestamp>." + body` under `OCR_CALLBACK_SECRET`, and should reject stale timestamps.

Only hosts listed in `OCR_CALLBACK_ALLOWED_HOSTS` are ever called (checked at submission with a
400, and again at delivery), and redirects are not followed, so a job cannot be used to reach
into the cluster. A URL is checked by BOTH parsers that see it: `urlsplit` (which silently drops
tab/CR/LF) and httpx's own (which the delivery uses), and refused if it holds any whitespace or
control character or if the two disagree on its host, so what is allowed is what is called.

One tenant's callback must never stop anyone else's: whatever one delivery raises is logged,
counted (`ocr_job_callbacks_total{outcome="error"}`) and retried with back-off like a failed
answer, and after `MAX_ATTEMPTS` claims (however they ended, a crash mid-delivery included) the
callback is given up (`callback_state: failed`). `ocr_job_callback_dispatcher_up` is 0 if a
dispatcher task ever ends on its own, which the `CatalystOcrCallbackDispatcherDown` alert watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from ocr_service import metrics
from ocr_service.jobs.errors import CallbackNotAllowed, StoreUnavailable
from ocr_service.jobs.models import CallbackTask
from ocr_service.jobs.store import JobStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Catalyst-Signature"
TIMESTAMP_HEADER = "X-Catalyst-Timestamp"
JOB_HEADER = "X-Catalyst-Job-Id"
MAX_ATTEMPTS = 8
MAX_URL_LENGTH = 2048


def check_callback_url(url: str, allowed_hosts: tuple[str, ...]) -> str:
    """Return `url` if it is http(s) to an allowed host; raise `CallbackNotAllowed` (400) otherwise.

    An allowed entry is a host name (`hooks.example.com`), optionally with a port
    (`127.0.0.1:8080`), or `*.example.com` for any subdomain.
    """
    if len(url) > MAX_URL_LENGTH:
        raise CallbackNotAllowed(f"callback_url is longer than {MAX_URL_LENGTH} characters.", param="callback_url")
    bad = next((char for char in url if char.isspace() or ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0), None)
    if bad is not None:
        raise CallbackNotAllowed(
            f"callback_url must not contain whitespace or control characters (found {bad!r}); percent-encode them.",
            param="callback_url",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
        delivered_host = httpx.URL(url).host  # the parser the delivery itself uses
    except (ValueError, httpx.InvalidURL):
        raise CallbackNotAllowed("callback_url is not a valid URL.", param="callback_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackNotAllowed("callback_url must be an absolute http or https URL.", param="callback_url")
    if parts.username or parts.password:
        raise CallbackNotAllowed("callback_url must not carry credentials.", param="callback_url")
    host = parts.hostname.lower()
    if delivered_host.lower() != host:
        raise CallbackNotAllowed(
            "callback_url is ambiguous: its host reads differently to different parsers.", param="callback_url"
        )
    for entry in allowed_hosts:
        entry_host, _, entry_port = entry.partition(":") if not entry.startswith("[") else (entry, "", "")
        if entry_port and str(port or (443 if parts.scheme == "https" else 80)) != entry_port:
            continue
        if host == entry_host or (entry_host.startswith("*.") and host.endswith(entry_host[1:])):
            return url
    if not allowed_hosts:
        detail = "callbacks are disabled on this service (OCR_CALLBACK_ALLOWED_HOSTS is empty)."
    else:
        detail = f"host {host!r} is not in the callback allow-list."
    raise CallbackNotAllowed(detail, param="callback_url")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and what the tests do): constant-time comparison."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff_seconds(attempt: int, base: float) -> float:
    return float(min(base * 2 ** (attempt - 1), 3600.0))


class CallbackDispatcher:
    """Delivers due callbacks in the background; `poll_seconds` and `backoff_base` are tunable for tests."""

    def __init__(
        self,
        store: JobStore,
        *,
        secret: str,
        allowed_hosts: tuple[str, ...],
        poll_seconds: float | Callable[[], float] = 1.0,
        backoff_base: float = 2.0,
        timeout_seconds: float = 10.0,
        concurrency: int = 4,
    ) -> None:
        self.store = store
        self.secret = secret
        self.allowed_hosts = allowed_hosts
        self.poll_seconds = poll_seconds
        self.backoff_base = backoff_base
        self.timeout = timeout_seconds
        self.concurrency = concurrency
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False)
        self._tasks = [asyncio.create_task(self._loop(), name=f"job-callbacks-{n}") for n in range(self.concurrency)]
        metrics.JOB_CALLBACK_DISPATCHER_UP.set(1)
        for task in self._tasks:
            task.add_done_callback(_report_dead_loop)

    def wake(self) -> None:
        """A job became final (here, or on any replica through the change feed): look for its callback now."""
        self._wake.set()

    def _poll_seconds(self) -> float:
        return self.poll_seconds() if callable(self.poll_seconds) else self.poll_seconds

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _loop(self) -> None:
        while True:
            try:
                task = await self.store.claim_callback(lease_seconds=self.timeout * 2 + 5)
            except StoreUnavailable:
                task = None
            except Exception:
                log.exception("callback dispatcher failed to claim; retrying")
                task = None
            if task is None:
                self._wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
                # arrives as the wake-up completes (a cancel just before shutdown), and stop() hung.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_seconds()):
                        await self._wake.wait()
                continue
            try:
                await self._deliver(task)
            except StoreUnavailable:
                pass  # the lease runs out and the callback is claimed again (the attempt counts)
            except Exception:
                # A bug or a hostile value in one callback must not end this loop (it used to, silently).
                metrics.JOB_CALLBACKS.labels(outcome="error").inc()
                log.exception("delivering the callback of job %s failed; backing off", task.job_id)
                await self._retry_or_give_up(task, "internal error while delivering the callback")

    async def _retry_or_give_up(self, task: CallbackTask, error: str) -> None:
        """After a failed attempt: back off and try again, or give up after `MAX_ATTEMPTS`."""
        try:
            if task.attempts >= MAX_ATTEMPTS:
                metrics.JOB_CALLBACKS.labels(outcome="failed").inc()
                log.warning("callback for job %s given up after %d attempts: %s", task.job_id, task.attempts, error)
                await self.store.finish_callback(task.job_id, delivered=False, retry_in=None, error=error)
            else:
                metrics.JOB_CALLBACKS.labels(outcome="retry").inc()
                retry_in = backoff_seconds(task.attempts, self.backoff_base)
                await self.store.finish_callback(task.job_id, delivered=False, retry_in=retry_in, error=error)
        except Exception:
            # The store failed too: the claim's lease expires and the callback comes back with one
            # more attempt counted, so even this path ends at MAX_ATTEMPTS.
            log.exception("recording the callback attempt of job %s failed", task.job_id)
            await asyncio.sleep(self.backoff_base)

    async def _deliver(self, task: CallbackTask) -> None:
        if task.attempts > MAX_ATTEMPTS:
            # Claimed again after attempts that never recorded an outcome (a crash mid-delivery,
            # a lost store): the claim counts every attempt, so this is where they end.
            await self._retry_or_give_up(task, f"gave up after {task.attempts - 1} attempts")
            return
        job = await self.store.get_job(task.job_id)
        if job is None:
            return
        error: str | None = None
        try:
            check_callback_url(task.url, self.allowed_hosts)
        except CallbackNotAllowed as exc:
            metrics.JOB_CALLBACKS.labels(outcome="refused").inc()
            await self.store.finish_callback(task.job_id, delivered=False, retry_in=None, error=exc.detail)
            return
        body = json.dumps({"event": "job.finished", "job": job.to_json()}, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            JOB_HEADER: job.id,
            "User-Agent": "catalyst-ocr-callbacks",
        }
        assert self._client is not None
        try:
            response = await self._client.post(task.url, content=body, headers=headers)
            if 200 <= response.status_code < 300:
                metrics.JOB_CALLBACKS.labels(outcome="delivered").inc()
                await self.store.finish_callback(task.job_id, delivered=True, retry_in=None, error=None)
                return
            error = f"HTTP {response.status_code}"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is not an HTTPError
            error = f"{type(exc).__name__}: {exc}"
        await self._retry_or_give_up(task, error)


def _report_dead_loop(task: asyncio.Task[None]) -> None:
    """A dispatcher loop only ends by cancellation (`stop`); any other end is an outage to alert on."""
    if task.cancelled():
        return
    metrics.JOB_CALLBACK_DISPATCHER_UP.set(0)
    log.error(
        "callback dispatcher task %s ended: callbacks are delivered by fewer tasks",
        task.get_name(),
        exc_info=task.exception(),
    )
