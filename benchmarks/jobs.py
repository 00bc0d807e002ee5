"""Jobs vs the synchronous path, and a cache hit vs a miss, through the real app in-process.

    .venv/bin/python benchmarks/jobs.py                       # a few minutes on 2 cores
    .venv/bin/python benchmarks/jobs.py --quick               # CI smoke run, well under a minute
    .venv/bin/python benchmarks/jobs.py --database-url postgresql://...   # jobs on PostgreSQL

Three figures, each the median of `--rounds` runs on deterministic documents from
`benchmarks/_images.py` (the same text every run):

- multi-page PDF, sync: `POST /v1/ocr` until the answer arrives;
- the same PDF as a job: `POST /v1/jobs` (202), follow it to `succeeded`, `GET .../result`;
  the ratio job/sync is what durability costs (storing the input and every page's formats,
  claiming pages, polling), and "accepted after" is how long a client waits for the 202;
- cache: `POST /v1/ocr` for a one-page document twice; the first is a miss (recognised), the
  second a hit (answered from the cache); the ratio miss/hit is what the cache saves.

The result cache is disabled for the first two figures, so they measure recognition.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _images import a4_page, encode, receipt_line

from ocr_service.app import build_app
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


async def timed_job(client: httpx.AsyncClient, document: bytes, limit: float) -> tuple[float, float]:
    started = time.perf_counter()
    response = await client.post(
        "/v1/jobs", content=document, headers={"content-type": "application/pdf"}, params={"format": "text"}
    )
    response.raise_for_status()
    accepted = time.perf_counter() - started
    job_id = response.json()["id"]
    while True:
        status = (await client.get(f"/v1/jobs/{job_id}")).json()["status"]
        if status == "succeeded":
            break
        if status in ("failed", "cancelled") or time.perf_counter() - started > limit:
            raise RuntimeError(f"job {job_id} ended {status}")
        await asyncio.sleep(0.02)
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small documents, few rounds")
    parser.add_argument("--rounds", type=int, help="runs per figure (median reported)")
    parser.add_argument("--pages", type=int, help="pages of the multi-page PDF")
    parser.add_argument("--database-url", default="", help="run the jobs on PostgreSQL instead of SQLite")
    args = parser.parse_args()
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
