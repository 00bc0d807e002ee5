"""Jobs vs the synchronous path, and a cache hit vs a miss, through the real app in-process.

    .venv/bin/python benchmarks/jobs.py                       # a few minutes on 2 cores
    .venv/bin/python benchmarks/jobs.py --quick               # CI smoke run, under a minute
    .venv/bin/python benchmarks/jobs.py --database-url postgresql://...   # jobs on PostgreSQL
    .venv/bin/python benchmarks/jobs.py --part feed          # only the change-feed figures

Three figures, each the median of `--rounds` runs on deterministic documents from
`benchmarks/_images.py` (the same text every run):

- multi-page PDF, sync: `POST /v1/ocr` until the answer arrives;
- the same PDF as a job: `POST /v1/jobs` (202), follow it to `succeeded`, `GET .../result`;
  the ratio job/sync is what durability costs (storing the input and every page's formats,
  claiming pages, polling), and "accepted after" is how long a client waits for the 202;
- cache: `POST /v1/ocr` for a one-page document twice; the first is a miss (recognised), the
  second a hit (answered from the cache); the ratio miss/hit is what the cache saves.

The result cache is disabled for the first two figures, so they measure recognition.

Then the PostgreSQL change feed (LISTEN/NOTIFY, `ocr_service/jobs/pglisten.py`), each figure with
the feed live and with every replica's listener stopped (what a replica does while LISTEN is
down: the short fallback polls). The replicas are the real app served by uvicorn in this process
on loopback ports (real SSE over HTTP), on a PostgreSQL this script starts in a temp dir the way
`tests/jobs/jobs_servers.py` does (or on `--database-url`; give it a database nothing else uses):

- idle load: one replica (2 job workers) and `--streams` SSE streams, each on a job whose only
  page is leased for an hour to a worker "elsewhere" (the benchmark claims it through the store),
  so the jobs stay unfinished, the streams stay open and the replica's own workers find nothing
  to claim: the steady state of clients following slow work done on another replica. Figures:
  statements and store transactions per second the server ran in the database over `--window`
  seconds (`pg_stat_statements`, without the measurement's own query);
- claim latency: replicas A (workers stopped) and B (one idle job worker); a one-line image is
  submitted on A; the time from A's 202 to B's worker returning from `claim_page` with it;
- event latency: a stream on B follows a job submitted on A; A's worker recognises its page;
  the time from A's worker calling `complete_page` (the transaction that stores the page and
  commits its `progress` event) to that event arriving on B's stream.

Latencies are medians over `--feed-rounds` submissions, each after a random pause (0-1 s) so the
fallback polls are met at a random phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import operator
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import httpx
import uvicorn
from _images import a4_page, encode, receipt_line

from ocr_service.app import build_app
from ocr_service.jobs.models import ClaimedPage
from ocr_service.jobs.pglisten import ChangeListener
from ocr_service.jobs.runtime import JobRuntime
from ocr_service.jobs.worker import JobWorkers
from ocr_service.settings import Settings


def multipage_pdf(pages: int, lines: int, seed: int) -> bytes:
    images = [a4_page(seed + n, lines=lines)[0].convert("RGB") for n in range(pages)]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:], resolution=300.0)


async def timed_sync(client: httpx.AsyncClient, document: bytes) -> float:
    started = time.perf_counter()
    response = await client.post(
        "/v1/ocr", content=document, headers={"content-type": "application/pdf"}, params={"format": "text"}
    )
    response.raise_for_status()
    return time.perf_counter() - started


FINAL_STATES = ("succeeded", "failed", "cancelled")


async def timed_job(client: httpx.AsyncClient, document: bytes, limit: float) -> tuple[float, float]:
    started = time.perf_counter()
    response = await client.post(
        "/v1/jobs", content=document, headers={"content-type": "application/pdf"}, params={"format": "text"}
    )
    response.raise_for_status()
    accepted = time.perf_counter() - started
    job_id = response.json()["id"]
    await wait_final(client, job_id, within=limit - (time.perf_counter() - started), poll=0.02)
    (await client.get(f"/v1/jobs/{job_id}/result")).raise_for_status()
    return time.perf_counter() - started, accepted


async def cache_pair(client: httpx.AsyncClient, document: bytes) -> tuple[float, float]:
    times = []
    for expected in ("miss", "hit"):
        started = time.perf_counter()
        response = await client.post("/v1/ocr", content=document, headers={"content-type": "image/png"})
        response.raise_for_status()
        times.append(time.perf_counter() - started)
        if response.headers["x-cache"] != expected:
            raise RuntimeError(f"expected a cache {expected}, got {response.headers['x-cache']}")
    return times[0], times[1]


async def client_for(settings: Settings) -> tuple[object, httpx.AsyncClient]:
    app = build_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600)
    return lifespan, client


# -- the change feed: PostgreSQL LISTEN/NOTIFY live vs the fallback polls -------------------------

FEED_MODES = ("live", "off")
"""The change feed as it runs normally, then with every replica's listener stopped (fast polls)."""
ELSEWHERE = "bench-worker-on-another-replica"
"""Lease owner of the pages the idle-load figure keeps unfinished: nobody in this process."""
TESTS = Path(__file__).resolve().parent.parent / "tests"


@contextlib.contextmanager
def postgres_databases(url: str) -> Iterator[Callable[[], str]]:
    """A function giving a database URL per figure: `url` itself, or a fresh database on a throw-away server.

    The server is the tests' own (`tests/jobs/jobs_servers.py`: Debian's binaries, loopback, temp
    dir, fsync off), so the benchmark measures what the change-feed tests exercise.
    """
    if url:
        yield lambda: url
        return
    sys.path[:0] = [str(TESTS), str(TESTS / "jobs")]
    from jobs_servers import PostgresServer

    server = PostgresServer()
    try:
        with (server.data / "postgresql.conf").open("a") as conf:  # counts statements as they finish
            conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
        server.start()
        yield server.create_database
    finally:
        server.close()


@dataclass
class Replica:
    """One replica: the real app served by uvicorn on a loopback port, and its jobs runtime."""

    app: Any
    base_url: str

    @property
    def runtime(self) -> JobRuntime:
        runtime: JobRuntime = self.app.state.jobs
        return runtime

    @property
    def workers(self) -> JobWorkers:
        assert self.runtime.workers is not None
        return self.runtime.workers

    @property
    def listener(self) -> ChangeListener:
        listener: ChangeListener = self.runtime.store.db.listener  # type: ignore[attr-defined]
        return listener

    @property
    def feed_live(self) -> bool:
        return self.runtime.store.changes.live


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Replica]:
    """The app behind uvicorn in this process (real HTTP, so SSE events arrive one by one), feed live."""
    app = build_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until("the replica serving", lambda: server.started or task.done(), within=120)
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped at start-up")
        port = server.servers[0].sockets[0].getsockname()[1]
        replica = Replica(app, f"http://127.0.0.1:{port}")
        await until("the change feed live", lambda: replica.feed_live, within=60)
        yield replica
    finally:
        server.should_exit = True
        async with asyncio.timeout(60):
            await task


def feed_settings(data_dir: str, url: str, job_workers: int) -> Settings:
    """One engine worker, no result cache (every page is recognised), preprocessing off (clean pages)."""
    return Settings(
        data_dir=data_dir,
        database_url=url,
        workers=1,
        job_workers=job_workers,
        cache_ttl_seconds=0,
        default_preprocess="none",
    )


async def until(what: str, condition: Callable[[], object], within: float = 60) -> None:
    """Wait (bounded) for `condition`, checking every 5 ms."""
    deadline = time.perf_counter() + within
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no {what} after {within}s")
        await asyncio.sleep(0.005)


async def stop_when_idle(workers: JobWorkers) -> None:
    """Stop the workers once all of them wait for work: never mid-transaction (a worker stopped while its
    claim's BEGIN or a result's COMMIT is in flight hands asyncpg a connection still in a transaction)."""
    await until("the workers idle", lambda: workers.idle == workers.concurrency)
    await workers.stop()


async def disable_feeds(*replicas: Replica) -> None:
    """Stop every listener for good: each replica now polls at the fallback intervals."""
    for replica in replicas:
        await replica.listener.stop()
    await until("the feeds down", lambda: not any(r.feed_live for r in replicas))


async def submit(client: httpx.AsyncClient, seed: int) -> tuple[str, float]:
    """A one-line PNG as a job (a new text each time, so nothing is a cache or idempotency hit); (id, 202 time)."""
    image, _ = receipt_line(seed)
    response = await client.post("/v1/jobs", content=encode(image), headers={"content-type": "image/png"})
    accepted = time.perf_counter()
    if response.status_code != 202:
        raise RuntimeError(f"submission answered {response.status_code}: {response.text}")
    return str(response.json()["id"]), accepted


async def follow(client: httpx.AsyncClient, job_id: str, seen: dict[str, float]) -> None:
    """Read the job's SSE stream to its end, noting when each kind of event first arrived."""
    async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                seen.setdefault(line.removeprefix("event: "), time.perf_counter())


async def wait_final(client: httpx.AsyncClient, job_id: str, within: float = 120, poll: float = 0.05) -> None:
    """Until the job is final; RuntimeError unless it succeeded, TimeoutError after `within` seconds."""
    deadline = time.perf_counter() + within
    while (status := (await client.get(f"/v1/jobs/{job_id}")).json()["status"]) not in FINAL_STATES:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"job {job_id} still {status} after {within}s")
        await asyncio.sleep(poll)
    if status != "succeeded":
        raise RuntimeError(f"job {job_id} {status}")


LOAD_QUERY = """
    SELECT coalesce(sum(calls), 0)::bigint AS statements,
           coalesce(sum(calls) FILTER (WHERE query ILIKE 'BEGIN%'), 0)::bigint AS transactions
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query NOT LIKE '%pg_stat_statements%'
"""
"""Statements the server ran in this database, and how many of them opened a store transaction
(every store operation is one `BEGIN ... COMMIT` on a pooled connection, followed by asyncpg's
reset query); this query itself does not count."""


@dataclass
class Load:
    """What the server ran in the database per second."""

    statements: float
    transactions: float


async def counts_statements(url: str) -> bool:
    """Whether `server_load` can measure this database (the extension is loaded and can be created)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.fetchrow(LOAD_QUERY)
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()
    return True


async def server_load(url: str, window: float) -> Load:
    """The database's statement and transaction rates over `window` seconds, from `pg_stat_statements`.

    Not `pg_stat_database.xact_commit`: backends report those counters in batches (at most once
    a second, and an idle backend only after 10 s), so a window of a few seconds would count a
    burst from before it and miss part of its own; `pg_stat_statements` counts each statement as
    it finishes. It must be in `shared_preload_libraries` (the server this script starts has it).
    """
    conn = await asyncpg.connect(url)
    try:
        before, started = await conn.fetchrow(LOAD_QUERY), time.perf_counter()
        await asyncio.sleep(window)
        after, elapsed = await conn.fetchrow(LOAD_QUERY), time.perf_counter() - started
    finally:
        await conn.close()
    assert before is not None and after is not None
    return Load(
        (after["statements"] - before["statements"]) / elapsed,
        (after["transactions"] - before["transactions"]) / elapsed,
    )


async def idle_load(url: str, streams: int, window: float) -> dict[str, Load]:
    """Database load of one replica holding `streams` open SSE streams, feed live and off."""
    rates: dict[str, Load] = {}
    limits = httpx.Limits(max_connections=streams + 8)
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as data_dir:
        async with (
            serving(feed_settings(data_dir, url, job_workers=2)) as replica,
            httpx.AsyncClient(base_url=replica.base_url, timeout=60, limits=limits) as client,
        ):
            await stop_when_idle(replica.workers)
            job_ids = [(await submit(client, 7000 + n))[0] for n in range(streams)]
            for _ in job_ids:  # every page leased for an hour elsewhere: unfinished, and nothing to claim here
                if await replica.runtime.store.claim_page(ELSEWHERE, 3600) is None:
                    raise RuntimeError("a submitted page was not claimable")
            replica.workers.start()
            changes = replica.runtime.store.changes
            readers = [asyncio.create_task(follow(client, job_id, {})) for job_id in job_ids]
            try:
                await until("every stream waiting", lambda: all(changes.waiting(j) for j in job_ids))
                await until("the workers idle", lambda: replica.workers.idle == replica.workers.concurrency)
                for mode in FEED_MODES:
                    if mode == "off":
                        await disable_feeds(replica)
                    await asyncio.sleep(2.0)  # settle: the setup's burst over, every waiter on its new interval
                    rates[mode] = await server_load(url, window)
                    if any(reader.done() for reader in readers):
                        raise RuntimeError("a stream ended while its job was unfinished")
                for job_id in job_ids:  # cancelling ends the streams
                    (await client.delete(f"/v1/jobs/{job_id}")).raise_for_status()
                async with asyncio.timeout(60):
                    await asyncio.gather(*readers)
            finally:
                for reader in readers:
                    reader.cancel()
    return rates


async def pause(rng: random.Random) -> None:
    """A random wait, so each submission meets the waiters' polls at a random phase."""
    await asyncio.sleep(rng.uniform(0.0, 1.0))


async def cross_replica_latencies(url: str, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per mode: the seconds until B claims a job submitted on A, and until A's progress reaches B's stream."""
    rng = random.Random(42)
    figures: dict[str, dict[str, list[float]]] = {mode: {"claim": [], "event": []} for mode in FEED_MODES}
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as data_dir:
        async with (
            serving(feed_settings(f"{data_dir}/a", url, job_workers=1)) as a,
            serving(feed_settings(f"{data_dir}/b", url, job_workers=1)) as b,
            httpx.AsyncClient(base_url=a.base_url, timeout=60) as client_a,
            httpx.AsyncClient(base_url=b.base_url, timeout=60) as client_b,
        ):
            claimed, written = observe_claims(b), observe_completions(a)
            await stop_when_idle(a.workers)
            seed = 8000
            for mode in FEED_MODES:
                if mode == "off":
                    await disable_feeds(a, b)
                for _ in range(rounds):  # B claims what A accepted
                    seed += 1
                    await until("B's worker idle", lambda: b.workers.idle == b.workers.concurrency)
                    await pause(rng)
                    job_id, accepted = await submit(client_a, seed)
                    await until("B's claim", functools.partial(operator.contains, claimed, job_id))
                    figures[mode]["claim"].append(claimed[job_id] - accepted)
                    await wait_final(client_a, job_id)
                await stop_when_idle(b.workers)
                for _ in range(rounds):  # A's progress reaches a stream on B
                    seed += 1
                    job_id, _ = await submit(client_a, seed)
                    seen: dict[str, float] = {}
                    reader = asyncio.create_task(follow(client_b, job_id, seen))
                    try:
                        await until("B's stream waiting", functools.partial(b.runtime.store.changes.waiting, job_id))
                        await pause(rng)
                        a.workers.start()
                        async with asyncio.timeout(120):
                            await reader
                    finally:
                        reader.cancel()
                        await stop_when_idle(a.workers)
                    if "progress" not in seen or job_id not in written:
                        raise RuntimeError(f"job {job_id}: stream saw {sorted(seen)}")
                    figures[mode]["event"].append(seen["progress"] - written[job_id])
                b.workers.start()
    return figures


def observe_claims(replica: Replica) -> dict[str, float]:
    """When the replica's workers first claimed a page of each job (timing only; the claim is the store's)."""
    store = replica.runtime.store
    seen: dict[str, float] = {}
    claim = store.claim_page

    async def timed_claim(owner: str, lease_seconds: float) -> ClaimedPage | None:
        page = await claim(owner, lease_seconds)
        if page is not None:
            seen.setdefault(page.job_id, time.perf_counter())
        return page

    store.claim_page = timed_claim  # type: ignore[method-assign]
    return seen


def observe_completions(replica: Replica) -> dict[str, float]:
    """When the replica's workers began storing a page's result (and its `progress` event) for each job.

    The start of the write, not its return: the commit lies in between, and other replicas may
    hear of it before `complete_page` has given its connection back to the pool.
    """
    store = replica.runtime.store
    seen: dict[str, float] = {}
    complete = store.complete_page

    async def timed_complete(page: ClaimedPage, owner: str, results: Any, cached: bool) -> bool:
        seen.setdefault(page.job_id, time.perf_counter())
        return await complete(page, owner, results, cached)

    store.complete_page = timed_complete  # type: ignore[method-assign]
    return seen


async def change_feed(database_url: str, streams: int, window: float, rounds: int) -> None:
    with postgres_databases(database_url) as new_database:
        url = new_database()
        rates = await idle_load(url, streams, window) if await counts_statements(url) else None
        latencies = await cross_replica_latencies(new_database(), rounds)
    claim = {mode: statistics.median(latencies[mode]["claim"]) * 1000 for mode in FEED_MODES}
    event = {mode: statistics.median(latencies[mode]["event"]) * 1000 for mode in FEED_MODES}
    print()
    print(f"change feed (PostgreSQL LISTEN/NOTIFY): live vs listener stopped; {window:.0f}s windows, {rounds} rounds")
    print(f"{'figure':<40}{'feed live':>12}{'feed off':>12}{'off / live':>12}")
    for name, unit in (("statements", "st/s"), ("transactions", "tx/s")):
        row = f"idle, {streams} SSE streams: {name}"
        if rates is None:
            print(f"{row:<40}  skipped: pg_stat_statements is not in the server's shared_preload_libraries")
            continue
        live, off = getattr(rates["live"], name), getattr(rates["off"], name)
        print(f"{row:<40}{live:>8.1f}{unit}{off:>8.1f}{unit}{off / live:>11.1f}x")
    for row, figure in (
        ("claim on B after 202 on A (median)", claim),
        ("A writes progress -> B's stream (median)", event),
    ):
        print(f"{row:<40}{figure['live']:>10.1f}ms{figure['off']:>10.1f}ms{figure['off'] / figure['live']:>11.1f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small documents, few rounds")
    parser.add_argument("--rounds", type=int, help="runs per figure (median reported)")
    parser.add_argument("--pages", type=int, help="pages of the multi-page PDF")
    parser.add_argument("--database-url", default="", help="run the jobs on PostgreSQL instead of SQLite")
    parser.add_argument("--part", choices=("all", "ocr", "feed"), default="all", help="which figures to measure")
    parser.add_argument("--streams", type=int, help="open SSE streams for the change feed's idle load")
    parser.add_argument("--window", type=float, help="seconds the idle load is measured, per mode")
    parser.add_argument("--feed-rounds", type=int, help="submissions per change-feed latency and mode")
    args = parser.parse_args()
    if args.part != "feed":
        await ocr_figures(args)
    if args.part != "ocr":
        await change_feed(
            args.database_url,
            streams=args.streams or (10 if args.quick else 50),
            window=args.window or (4.0 if args.quick else 30.0),
            rounds=args.feed_rounds or (3 if args.quick else 15),
        )


async def ocr_figures(args: argparse.Namespace) -> None:
    rounds = args.rounds or (2 if args.quick else 5)
    pages = args.pages or (3 if args.quick else 8)
    lines = 6 if args.quick else 20

    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as data_dir:
        base = {"data_dir": data_dir, "database_url": args.database_url, "default_preprocess": "none"}
        lifespan, client = await client_for(Settings(cache_ttl_seconds=0, **base))  # type: ignore[arg-type]
        try:
            sync_times, job_times, accepted_times = [], [], []
            for n in range(rounds):
                document = multipage_pdf(pages, lines, seed=1000 * n)
                sync_times.append(await timed_sync(client, document))
                total, accepted = await timed_job(client, document, limit=600)
                job_times.append(total)
                accepted_times.append(accepted)
        finally:
            await client.aclose()
            await lifespan.__aexit__(None, None, None)  # type: ignore[attr-defined]

        lifespan, client = await client_for(Settings(**base))  # type: ignore[arg-type]
        try:
            misses, hits = [], []
            for n in range(rounds * 3):
                image, _ = receipt_line(5000 + n)
                miss, hit = await cache_pair(client, encode(image))
                misses.append(miss)
                hits.append(hit)
        finally:
            await client.aclose()
            await lifespan.__aexit__(None, None, None)  # type: ignore[attr-defined]

    sync_s, job_s = statistics.median(sync_times), statistics.median(job_times)
    miss_s, hit_s = statistics.median(misses), statistics.median(hits)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"multi-page PDF: {pages} pages, {rounds} rounds, jobs on {backend}, {os.cpu_count()} CPUs")
    print(f"{'figure':<34}{'median':>12}")
    print(f"{'sync POST /v1/ocr':<34}{sync_s * 1000:>10.0f}ms")
    print(f"{'job: submit -> result':<34}{job_s * 1000:>10.0f}ms")
    print(f"{'job: accepted (202) after':<34}{statistics.median(accepted_times) * 1000:>10.1f}ms")
    print(f"{'ratio job / sync':<34}{job_s / sync_s:>11.2f}x")
    print(f"{'cache miss (one line, recognised)':<34}{miss_s * 1000:>10.1f}ms")
    print(f"{'cache hit (same document again)':<34}{hit_s * 1000:>10.1f}ms")
    print(f"{'ratio miss / hit':<34}{miss_s / hit_s:>11.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
