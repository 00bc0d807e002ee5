"""The job change feed: committed job events are pushed (PostgreSQL LISTEN/NOTIFY across replicas,
in-process on SQLite) to event streams and idle workers, so neither needs to poll quickly.

The replicas here are two apps in one process, each with its own pool, LISTEN connection and
workers, on one PostgreSQL database: the only way from one to the other is PostgreSQL. Poll
intervals are set to 60 s (`long_polls`), so anything arriving well before that was pushed; the
bounds are generous (`PROMPTLY`) and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_servers import PostgresServer
from jobs_support import job_settings, parse_sse, pdf, wait_final, wait_until
from suite_support import running_app

from ocr_service import metrics
from ocr_service.http import jobs as jobs_http
from ocr_service.jobs import runtime as jobs_runtime
from ocr_service.jobs.changes import WORK_KINDS, PollIntervals, decode, encode
from ocr_service.jobs.pglisten import ChangeListener
from ocr_service.jobs.postgres import PostgresDatabase
from ocr_service.jobs.runtime import JobRuntime
from ocr_service.jobs.sqlite import SqliteDatabase
from ocr_service.jobs.sqlstore import SqlJobStore

PDF_TYPE = {"content-type": "application/pdf"}
SLOW = 60.0
PROMPTLY = 30.0
"""Generous, yet half of what a stream or worker would sleep if nothing woke it."""


@pytest.fixture
def long_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams and workers that nobody wakes look at the store only once a minute, live feed or not.

    The keep-alive goes to a minute too: a stream re-reads its job after each one.
    """
    monkeypatch.setattr(jobs_http, "SSE_POLL", PollIntervals(fallback=SLOW, live=SLOW))
    monkeypatch.setattr(jobs_http, "SSE_KEEPALIVE_SECONDS", SLOW)
    monkeypatch.setattr(jobs_runtime, "WORKER_POLL", PollIntervals(fallback=SLOW, live=SLOW))


def runtime_of(client: httpx.AsyncClient) -> JobRuntime:
    runtime: JobRuntime = client.app.state.jobs  # type: ignore[attr-defined]
    return runtime


def listener_of(client: httpx.AsyncClient) -> Any:
    store = runtime_of(client).store
    assert isinstance(store, SqlJobStore) and isinstance(store.db, PostgresDatabase)
    return store.db.listener


@contextlib.asynccontextmanager
async def two_replicas(tmp_path: Path, url: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Replicas A and B on one database, one engine worker and one job worker each, both feeds live."""

    def settings(name: str) -> Any:
        return job_settings(tmp_path / name, database_url=url, workers=1, job_workers=1)

    async with running_app(settings("a")) as a, running_app(settings("b")) as b:
        await wait_until("both change feeds live", lambda: feeds_live(a, b))
        yield a, b


def metric(collector: Any) -> float:
    """The current value of an unlabelled gauge or counter."""
    return float(collector._value.get())


def feeds_live(*clients: httpx.AsyncClient) -> bool:
    return all(runtime_of(c).store.changes.live for c in clients)


async def submit(client: httpx.AsyncClient, document: bytes, within: float = PROMPTLY) -> str:
    """Submit, retrying a 503 (a pool connection that died with a restarted PostgreSQL) for a bounded time."""
    async with asyncio.timeout(within):
        while True:
            response = await client.post("/v1/jobs", content=document, headers=PDF_TYPE)
            if response.status_code != 503:
                assert response.status_code == 202, response.text
                return str(response.json()["id"])
            await asyncio.sleep(0.2)


async def waiting_stream(client: httpx.AsyncClient, job_id: str) -> asyncio.Task[httpx.Response]:
    """The job's event stream, once it waits on the change feed (it cannot end before the job does).

    A stream that a pooled connection lost with a restarted PostgreSQL ended early (503, or an
    `error` event) is opened again, for a bounded time.
    """
    changes = runtime_of(client).store.changes
    for _attempt in range(20):
        stream = asyncio.create_task(client.get(f"/v1/jobs/{job_id}/events"))

        def waiting_or_ended(opened: asyncio.Task[httpx.Response] = stream) -> bool:
            return changes.waiting(job_id) >= 1 or opened.done()

        await wait_until("the stream waiting on the change feed", waiting_or_ended)
        if not stream.done():
            return stream
        response = stream.result()
        assert response.status_code == 503 or "event: error" in response.text, response.text
        await asyncio.sleep(0.2)
    raise AssertionError("the event stream kept failing")


async def stream_on_b_follows_work_on_a(a: httpx.AsyncClient, b: httpx.AsyncClient, pages: int = 2) -> None:
    """B's stream is waiting before A's worker starts; A's events must reach it long before its poll."""
    runtime_a, runtime_b = runtime_of(a), runtime_of(b)
    assert runtime_a.workers is not None and runtime_b.workers is not None
    await runtime_a.workers.stop()
    await runtime_b.workers.stop()
    job_id = await submit(a, pdf(pages))
    stream = await waiting_stream(b, job_id)
    try:
        runtime_a.workers.start()
        async with asyncio.timeout(PROMPTLY):
            response = await stream
    finally:
        stream.cancel()
    kinds = [kind for kind, _ in parse_sse(response.text)]
    assert kinds[0] == "queued" and kinds[-1] == "succeeded", kinds
    assert kinds.count("progress") == pages, kinds


@pytest.mark.xdist_group("jobs-change-feed")
async def test_a_stream_on_one_replica_is_pushed_the_progress_another_replica_makes(
    tmp_path: Path, postgres_url: str, long_polls: None
) -> None:
    async with two_replicas(tmp_path, postgres_url) as (a, b):
        await stream_on_b_follows_work_on_a(a, b)
        # while it idles, a stream costs nothing; afterwards nothing stays registered
        assert runtime_of(b).store.changes.waiting("no-such-job") == 0


@pytest.mark.xdist_group("jobs-change-feed")
async def test_a_job_submitted_on_one_replica_wakes_the_idle_workers_of_another(
    tmp_path: Path, postgres_url: str, long_polls: None
) -> None:
    async with two_replicas(tmp_path, postgres_url) as (a, b):
        workers_a, workers_b = runtime_of(a).workers, runtime_of(b).workers
        assert workers_a is not None and workers_b is not None
        await workers_a.stop()  # A accepts the job but cannot work on it
        await wait_until("B's workers idle, waiting a minute", lambda: workers_b.idle == workers_b.concurrency)
        job_id = await submit(a, pdf(2))
        job = await wait_final(a, job_id, within=PROMPTLY)
        assert job["status"] == "succeeded" and job["pages_done"] == 2, job


@pytest.mark.xdist_group("jobs-processes")
async def test_after_a_postgres_restart_the_feed_reconnects_and_pushes_again(
    tmp_path: Path, own_postgres: PostgresServer, long_polls: None
) -> None:
    reconnects_before = metric(metrics.JOB_CHANGE_FEED_RECONNECTS)
    async with two_replicas(tmp_path, own_postgres.create_database()) as (a, b):
        connected = metric(metrics.JOB_CHANGE_FEED_CONNECTED)  # a process-wide gauge: both replicas count
        exposition = (await a.get("/metrics")).text
        assert "ocr_job_change_feed_connected " in exposition and "ocr_job_change_feed_reconnects_total " in exposition
        await asyncio.to_thread(own_postgres.stop)
        await wait_until("both feeds noticing the outage", lambda: not runtime_of(a).store.changes.live)
        await wait_until("both feeds noticing the outage", lambda: not runtime_of(b).store.changes.live)
        assert metric(metrics.JOB_CHANGE_FEED_CONNECTED) == connected - 2
        await asyncio.to_thread(own_postgres.start)
        await wait_until("both feeds reconnected", lambda: feeds_live(a, b), within=60)
        assert listener_of(a).reconnects >= 1 and listener_of(b).reconnects >= 1
        assert metric(metrics.JOB_CHANGE_FEED_RECONNECTS) >= reconnects_before + 2
        assert metric(metrics.JOB_CHANGE_FEED_CONNECTED) == connected
        await stream_on_b_follows_work_on_a(a, b)


@pytest.mark.xdist_group("jobs-processes")
async def test_shutdown_stays_prompt_and_leaves_no_listener_while_postgres_is_away(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    url = own_postgres.create_database()
    await asyncio.to_thread(own_postgres.stop)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(running_app(job_settings(tmp_path, database_url=url)))
        listener = listener_of(client)
        assert not runtime_of(client).store.changes.live  # the replica started anyway, polling
        assert (await client.get("/readyz")).status_code == 503  # for PostgreSQL itself, not for the feed
        await asyncio.sleep(1.5)  # let the listener fail a few times and back off
        async with asyncio.timeout(10):  # connect attempts and back-off sleeps are cancelled, not waited out
            await stack.aclose()
    assert listener._task is None and listener._connection is None
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "job-change-listener"]


@pytest.mark.xdist_group("jobs-change-feed")
async def test_without_the_feed_streams_and_workers_fall_back_to_short_polls_and_stay_ready(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: with LISTEN down, waiters poll at the old short intervals, not the live ones."""
    monkeypatch.setattr(jobs_http, "SSE_POLL", PollIntervals(fallback=0.25, live=SLOW))
    monkeypatch.setattr(jobs_runtime, "WORKER_POLL", PollIntervals(fallback=0.5, live=SLOW))
    async with two_replicas(tmp_path, postgres_url) as (a, b):
        workers_a, workers_b = runtime_of(a).workers, runtime_of(b).workers
        assert workers_a is not None and workers_b is not None
        await workers_a.stop()
        for client in (a, b):
            await listener_of(client).stop()
        assert not runtime_of(a).store.changes.live and not runtime_of(b).store.changes.live
        for client in (a, b):  # the feed is an optimisation: readiness does not depend on it
            assert (await client.get("/readyz")).status_code == 200
        job_id = await submit(a, pdf(1))
        async with asyncio.timeout(PROMPTLY):
            response = await b.get(f"/v1/jobs/{job_id}/events")
        kinds = [kind for kind, _ in parse_sse(response.text)]
        assert kinds[0] == "queued" and kinds[-1] == "succeeded", kinds
        listener_of(a).start()
        await wait_until("A's feed live again", lambda: feeds_live(a))


async def test_sqlite_streams_are_pushed_without_polling(tmp_path: Path, long_polls: None) -> None:
    async with running_app(job_settings(tmp_path, job_workers=1)) as client:
        runtime = runtime_of(client)
        assert runtime.store.backend == "sqlite" and runtime.store.changes.live
        assert runtime.workers is not None
        await runtime.workers.stop()
        job_id = await submit(client, pdf(2))
        stream = await waiting_stream(client, job_id)
        try:
            runtime.workers.start()
            async with asyncio.timeout(PROMPTLY):
                response = await stream
        finally:
            stream.cancel()
        kinds = [kind for kind, _ in parse_sse(response.text)]
        assert kinds[0] == "queued" and kinds.count("progress") == 2 and kinds[-1] == "succeeded", kinds


async def test_sqlite_workers_wake_for_a_page_given_back(tmp_path: Path, long_polls: None) -> None:
    """A page reclaimed from a lost worker (`retry`) wakes idle workers, as a submission does."""
    async with running_app(job_settings(tmp_path, job_workers=1, job_lease_seconds=1.0)) as client:
        runtime = runtime_of(client)
        workers = runtime.workers
        assert workers is not None
        await workers.stop()
        job_id = await submit(client, pdf(1))
        assert await runtime.store.claim_page("worker-that-died", 1.0) is not None
        workers.start()
        await wait_until("the worker idle (the only page is leased)", lambda: workers.idle == workers.concurrency)
        job = await wait_final(client, job_id, within=PROMPTLY)  # housekeeping reaps within ~1 s, then the wake
        assert job["status"] == "succeeded", job


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_changes_are_announced_at_commit_and_never_for_a_rollback(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        writer = observer = SqlJobStore(SqliteDatabase(tmp_path / "jobs.sqlite3"))
        await writer.open()
    else:
        url = request.getfixturevalue("postgres_url")
        writer, observer = SqlJobStore(PostgresDatabase(url)), SqlJobStore(PostgresDatabase(url))
        await writer.open()
        await observer.open()
    woken: list[str] = []
    stop_listening: Callable[[], None] | None = None
    try:
        await wait_until("the observer's feed live", lambda: observer.changes.live)  # going live wakes everyone
        stop_listening = observer.changes.on_events(WORK_KINDS, lambda: woken.append("work"))
        with observer.changes.watch("rolled-back") as rolled_back, observer.changes.watch("committed") as committed:
            with pytest.raises(RuntimeError):
                async with writer.db.transaction() as tx:
                    await tx.notify("rolled-back", "queued")
                    raise RuntimeError("roll back")
            async with writer.db.transaction() as tx:
                await tx.notify("committed", "progress")
                assert not committed.is_set()  # not before the commit
            assert await committed.wait(PROMPTLY)
            # notifications arrive in commit order: had the rollback announced anything, it would be here
            assert not rolled_back.is_set()
            assert woken == []  # `progress` makes no page claimable
            async with writer.db.transaction() as tx:
                await tx.notify("committed", "retry")
            await wait_until("workers woken for a page given back", lambda: woken == ["work"], within=PROMPTLY)
    finally:
        if stop_listening is not None:
            stop_listening()
        await writer.close()
        if observer is not writer:
            await observer.close()


async def test_health_checks_keep_a_working_feed_live(postgres_url: str) -> None:
    database = PostgresDatabase(postgres_url)
    database.listener = listener = ChangeListener(postgres_url, database.changes, health_check_seconds=0.1)
    await database.open()
    try:
        await wait_until("three health checks after the first", lambda: listener.round_trips >= 4)
        assert database.changes.live and listener.reconnects == 0 and listener.failed_connects == 0
    finally:
        await database.close()
    assert not database.changes.live


class DeafListener(ChangeListener):
    """What a pooler in transaction mode does to LISTEN: accepted, but no notification ever arrives."""

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        pass


async def test_a_feed_that_delivers_nothing_never_counts_as_live(postgres_url: str) -> None:
    database = PostgresDatabase(postgres_url, connect_timeout=0.5)
    database.listener = listener = DeafListener(postgres_url, database.changes, connect_timeout=0.5, max_backoff=0.2)
    store = SqlJobStore(database)
    await store.open()
    try:
        await wait_until("two attempts refused", lambda: listener.failed_connects >= 2)
        assert not store.changes.live  # so streams and workers keep polling at the short intervals
        await store.ping()  # and the store itself is fine: readiness holds
    finally:
        await store.close()


def test_payloads_are_small_and_unknown_ones_are_ignored() -> None:
    payload = encode("6f0c6d0e-6a9c-4f0e-9a35-0c7d6f1e2b3a", "succeeded")
    assert len(payload.encode()) < 64
    assert decode(payload) == ("6f0c6d0e-6a9c-4f0e-9a35-0c7d6f1e2b3a", "succeeded")
    assert decode("garbage") is None and decode(":x") is None and decode("x:") is None
