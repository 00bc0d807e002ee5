"""Service vs raw engine: throughput, latency and memory of `catalyst-ocr serve` under HTTP load.

    .venv/bin/python benchmarks/service_throughput.py           # full run (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/service_throughput.py --quick   # CI smoke run, about a minute
    .venv/bin/python benchmarks/service_throughput.py --quick --generator httpx   # the fallback load generator

In one run, on the same deterministic images from `benchmarks/_images.py` (small receipt-line
crops, paragraph crops and full 300-DPI A4 pages, saved as PNG with 300 DPI metadata):

1. raw engine: one warm recognizer of the service's `capi` engine (libtesseract's C API through
   ctypes, the GIL released in every call) per CPU this process may use, each looping over the
   PNGs: decode (Pillow) + SetImage + Recognize + GetUTF8Text. Measured twice: as threads of this
   process, and as separate processes (one per CPU, started and warmed before the clock starts:
   no GIL or allocator shared at all, the physical limit of the cores). Images per second with
   every core busy, and the p50 of one warm recognition on one thread. Every service figure is
   compared with both.
2. service: a real `catalyst-ocr serve` subprocess on a free loopback port (OCR_WORKERS = the
   same CPU count), with 2 x workers connections POSTing the PNGs in rotation (raw body,
   `format=text&preprocess=none`: the same work as the raw engine, plus HTTP). Images per second,
   p50/p95 latency; then the default request (`preprocess=auto`, JSON) for reference.
   The load generator shares the machine, so it should cost as little CPU as possible: `wrk`
   (C, epoll; Debian package `wrk`, installed by `scripts/install-system-deps.sh --dev`) with a
   small Lua script that also checks every answer against its image's text; httpx (async, in
   this process, several times the CPU per request) only when wrk is absent. The output names
   the generator and its CPU per request. wrk stops at the end of its window with requests in
   flight; the server finishes them, so a round lasts until the server is idle again, and the
   server's own request counter (`/metrics`) says how many images it finished.
3. idle latency: one request at a time (httpx), p50, against the raw engine's warm p50.
4. the event loop while formats render: for each output format, one A4 page (defaults:
   `preprocess=auto`) is recognised while GET /livez is sent every 10 ms; the slowest and p99
   probe per format (target <= 100 ms: the operator's liveness probe allows 3 s).
5. jobs: `--jobs` single-page jobs of paragraph crops submitted at once (`POST /v1/jobs`, every
   format a job stores up front rendered per page: all but the PDF, which is rendered on first
   request), followed to `succeeded` through `GET /v1/jobs` every 0.25 s (one request per poll,
   not one per job), their results read after the timed span; pages per second from the first
   submission to the last job's own `finished_at` (so the poll interval does not move the
   figure), against the raw engine (threads and processes) on the same images in the same run
   (target >= 0.9x). This process is the load generator here, and its CPU per page is printed
   as wrk's is above: it shares the two cores with the server, as no raw engine round has to.
   Then the same jobs once more with GET /livez every 10 ms: the slowest /livez meanwhile (that
   batch's throughput is printed too; the probes cost the cores a share of their own).
6. memory: the server's RSS across N receipt requests (after warm-up, at the end, highest) and,
   in the full run, the peak while it recognises one page of OCR_MAX_PIXELS.

Besides images per second, each throughput line gives the CPU time per image (of the raw
engine's process, or of the server process): on a machine shared with other work, wall-clock
ratios swing with the neighbours' load, while the CPU-efficiency ratio shows what the service
itself adds. Every loop is bounded in count and in time. The figures are printed with ratios to the raw
engine; issue 2's targets are >= 0.95x throughput and <= 1.2x idle p50.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import multiprocessing
import multiprocessing.synchronize

import httpx
import numpy as np
import psutil
from _images import a4_page, encode, receipt_line, render_lines, words
from PIL import Image

from ocr_service.engine.base import RecognitionRequest, Recognizer
from ocr_service.engine.capi_engine import CapiBackend
from ocr_service.engine.cpus import available_cpus
from ocr_service.jobs.models import FINAL_STATUSES, JobStatus
from ocr_service.options import OutputFormat

CATALYST_OCR = Path(sys.executable).parent / "catalyst-ocr"
DPI = 300
SERVICE_QUERY = {"format": "text", "preprocess": "none", "psm": "3", "oem": "1"}
RAW_REQUEST = RecognitionRequest(1, "eng", 3, 1, DPI, frozenset({OutputFormat.TEXT}), with_words=False)
"""What the raw engine does per image: recognise once, read the text (SERVICE_QUERY asks the same)."""
FORMATS = ("json", "text", "hocr", "tsv", "alto", "pdf")
WRK = shutil.which("wrk")


@dataclass(frozen=True)
class Workload:
    name: str
    pixels_per_image: int
    documents: list[bytes]
    texts: list[str]


@dataclass
class LoadResult:
    completed: int = 0
    failed: int = 0
    wrong: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    generator: str = ""
    generator_cpu_seconds: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    """Percentiles reported by the generator itself (wrk keeps its own histogram, not a list)."""

    @property
    def cpu_ms_per_image(self) -> float:
        """CPU time spent per finished image (the engine's process, or the server's)."""
        return self.cpu_seconds * 1000 / self.completed if self.completed else float("nan")

    @property
    def per_second(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        reported = {0.5: self.p50_ms, 0.95: self.p95_ms}.get(fraction)
        if reported is not None:
            return reported
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def build_workload(name: str, make: Callable[[int], tuple[Image.Image, str]], count: int) -> Workload:
    images = [make(seed) for seed in range(1, count + 1)]
    return Workload(
        name,
        images[0][0].width * images[0][0].height,
        [encode(image, "PNG", dpi=(DPI, DPI)) for image, _ in images],
        [text for _, text in images],
    )


def first_words_match(recognised: str, expected: str) -> bool:
    """A cheap content check: the first three expected words appear in the answer."""
    got = recognised.lower()
    return all(word.lower() in got for word in expected.split()[:3])


# --- raw engine ------------------------------------------------------------------------------


def _recognise(recognizer: Recognizer, document: bytes) -> str:
    """What any OCR of an image file does: decode it (Pillow), then recognise the pixels."""
    with Image.open(io.BytesIO(document)) as image:
        pixels = np.asarray(image.convert("L"))
    return recognizer.recognize(pixels, RAW_REQUEST).text


def raw_throughput(workload: Workload, threads: int, seconds: float, max_images: int) -> LoadResult:
    """Images per second with one warm recognizer per thread, all threads busy until the deadline."""
    backend = CapiBackend()
    apis = [backend.new_recognizer() for _ in range(threads)]
    for api in apis:
        _recognise(api, workload.documents[0])  # warm: model loaded, caches filled
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(max_images))
    deadline = time.perf_counter() + seconds

    def work(api: Recognizer) -> None:
        while time.perf_counter() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            document = workload.documents[index % len(workload.documents)]
            started = time.perf_counter()
            text = _recognise(api, document)
            with lock:
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.completed += 1
                result.wrong += not first_words_match(text, workload.texts[index % len(workload.texts)])

    started = time.perf_counter()
    cpu_started = time.process_time()
    workers = [threading.Thread(target=work, args=(api,)) for api in apis]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    result.elapsed = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    for api in apis:
        api.close()
    return result


def _raw_process(
    documents: list[bytes],
    texts: list[str],
    offset: int,
    budget: int,
    seconds: float,
    ready: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    """One raw-engine process: warm up, wait for the others, recognise until the window or budget ends."""
    recognizer = CapiBackend().new_recognizer()
    _recognise(recognizer, documents[0])
    ready.wait(120)
    started = time.perf_counter()
    cpu_started = time.process_time()
    deadline = started + seconds
    completed = wrong = 0
    latencies: list[float] = []
    for index in range(offset, offset + budget):
        if time.perf_counter() >= deadline:
            break
        begun = time.perf_counter()
        text = _recognise(recognizer, documents[index % len(documents)])
        latencies.append((time.perf_counter() - begun) * 1000)
        completed += 1
        wrong += not first_words_match(text, texts[index % len(texts)])
    results.put((completed, wrong, time.process_time() - cpu_started, time.perf_counter() - started, latencies))
    recognizer.close()


def raw_throughput_processes(workload: Workload, processes: int, seconds: float, max_images: int) -> LoadResult:
    """Images per second with one warm engine per separate process (spawned, so nothing is shared).

    Each process is started and warmed before the window opens (a barrier); the window is the
    slowest process's, and CPU is the sum of the processes' own.
    """
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    budget = max(1, max_images // processes)
    children = [
        context.Process(
            target=_raw_process,
            args=(workload.documents, workload.texts, n * budget, budget, seconds, ready, results),
            daemon=True,
        )
        for n in range(processes)
    ]
    for child in children:
        child.start()
    result = LoadResult()
    try:
        ready.wait(120)
        for _ in children:
            completed, wrong, cpu, elapsed, latencies = results.get(timeout=seconds + 600)
            result.completed += completed
            result.wrong += wrong
            result.cpu_seconds += cpu
            result.elapsed = max(result.elapsed, elapsed)
            result.latencies_ms.extend(latencies)
    finally:
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
    return result


# --- the service -----------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str

    @property
    def rss_bytes(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    @property
    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)


@contextmanager
def running_server(workers: int, queue_size: int) -> Iterator[Server]:
    """`catalyst-ocr serve` on a free loopback port (learned from its start-up line), data in a temp dir.

    Its logs (one access line per request) go to a file in that directory rather than a pipe, so
    no thread in this process wakes up to read every line while the load runs.
    """
    data_dir = tempfile.TemporaryDirectory(prefix="catalyst-bench-")
    log_path = Path(data_dir.name) / "server.log"
    log_file = log_path.open("w")
    env = {
        **os.environ,
        "OMP_THREAD_LIMIT": "1",
        "OCR_WORKERS": str(workers),
        "OCR_QUEUE_SIZE": str(queue_size),
        "OCR_LOG_FORMAT": "json",
        "OCR_DATA_DIR": data_dir.name,
        "OCR_CACHE_TTL_SECONDS": "0",  # measure recognition, not the result cache
    }
    process = subprocess.Popen(
        [str(CATALYST_OCR), "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    try:
        port = None
        for _ in range(600):  # the start-up line within 60 s
            match = re.search(r"running on http://127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))
            if match:
                port = int(match.group(1))
                break
            if process.poll() is not None:
                break
            time.sleep(0.1)
        if port is None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"catalyst-ocr serve did not start within 60 s:\n{tail}")
        yield Server(process, f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log_file.close()
        data_dir.cleanup()


async def http_load(
    client: httpx.AsyncClient,
    workload: Workload,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
    params: dict[str, str],
    on_response: Callable[[], None] | None = None,
    server: Server | None = None,
) -> LoadResult:
    """`concurrency` request loops until the deadline or `max_requests`; in-flight ones are awaited."""
    result = LoadResult()
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            index = next(counter, None)
            if index is None:
                return
            document = workload.documents[index % len(workload.documents)]
            started = time.perf_counter()
            response = await client.post("/v1/ocr", params=params, content=document)
            latency = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                result.failed += 1
                continue
            result.completed += 1
            result.latencies_ms.append(latency)
            text = response.text if params.get("format") == "text" else response.json()["text"]
            result.wrong += not first_words_match(text, workload.texts[index % len(workload.texts)])
            if on_response is not None:
                on_response()

    started = time.perf_counter()
    cpu_started = server.cpu_seconds if server else 0.0
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    result.cpu_seconds = server.cpu_seconds - cpu_started if server else 0.0
    return result


WRK_SCRIPT = r"""
-- POST the benchmark's documents in rotation (raw body) and check each answer against its image.
-- Each document is tagged through X-Request-ID, which the service echoes, so answers are matched
-- to their images whatever order they come back in.
local manifest, budget = "%(manifest)s", %(budget)d
local documents, expected = {}, {}
for line in io.lines(manifest) do
  local path, words = line:match("^([^\t]*)\t(.*)$")
  local handle = assert(io.open(path, "rb"))
  documents[#documents + 1] = handle:read("*a")
  handle:close()
  expected[#expected + 1] = words
end
local headers = {["Content-Type"] = "%(content_type)s"}
sent, answered, wrong, failed = 0, 0, 0, 0

function request()
  local index = sent %% #documents + 1
  sent = sent + 1
  headers["X-Request-ID"] = "img" .. index .. "-" .. sent
  return wrk.format("POST", "%(path)s", headers, documents[index])
end

function response(status, response_headers, body)
  answered = answered + 1
  if status ~= 200 then
    failed = failed + 1
  else
    local index = tonumber((response_headers["x-request-id"] or ""):match("^img(%%d+)-"))
    local text = body:lower()
    if index == nil then
      wrong = wrong + 1
    else
      for word in expected[index]:gmatch("%%S+") do
        if not text:find(word, 1, true) then
          wrong = wrong + 1
          break
        end
      end
    end
  end
  if answered >= budget then
    wrk.thread:stop()
  end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local total_wrong, total_failed = 0, 0
  for _, thread in ipairs(threads) do
    total_wrong = total_wrong + thread:get("wrong")
    total_failed = total_failed + thread:get("failed")
  end
  local errors = summary.errors
  io.write(string.format("CATALYST-WRK %%d %%d %%d %%d %%.3f %%.3f\n", summary.requests, total_wrong,
    total_failed, errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000))
end
"""


def server_ocr_counts(server: Server) -> tuple[int, int, int]:
    """(POST /v1/ocr answered 200, answered otherwise, HTTP requests in flight) from the server's /metrics.

    A request whose client disconnected is stopped and logged as 499; wrk leaves one in flight per
    connection when its window ends, which is no failure of the service, so 499s are not counted.
    """
    exposition = httpx.get(server.base_url + "/metrics", timeout=30).text
    ok = failed = 0
    in_flight = 0
    for line in exposition.splitlines():
        if line.startswith("ocr_http_requests_total{") and 'route="/v1/ocr"' in line:
            count = int(float(line.rsplit(" ", 1)[1]))
            if 'status="200"' in line:
                ok += count
            elif 'status="499"' not in line:  # 499: the generator hung up at the end of its window
                failed += count
        elif line.startswith("ocr_http_requests_in_flight "):
            in_flight = int(float(line.rsplit(" ", 1)[1]))
    return ok, failed, in_flight - 1  # the scrape itself is in flight


def wait_until_idle(server: Server, limit_seconds: float) -> None:
    """Until the server has finished every request the generator left in flight (bounded in time).

    The server's CPU is watched first (no scrape adds work while it is busy), then /metrics confirms.
    """
    deadline = time.perf_counter() + limit_seconds
    while time.perf_counter() < deadline:
        before = server.cpu_seconds
        time.sleep(0.05)
        if server.cpu_seconds - before < 0.005 and server_ocr_counts(server)[2] <= 0:
            return
    raise RuntimeError(f"the server was still busy {limit_seconds:g} s after the load stopped")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_load(
    server: Server, workload: Workload, *, connections: int, seconds: float, max_requests: int, params: dict[str, str]
) -> LoadResult:
    """`connections` wrk connections for `seconds` (and at most `max_requests` answers), then until the server is idle.

    Images finished = the server's count of 200 answers over the round, so requests wrk left in
    flight count once the server has done them; wrong/failed answers and latency are wrk's.
    """
    with tempfile.TemporaryDirectory(prefix="catalyst-wrk-") as tmp:
        manifest = Path(tmp) / "documents.tsv"
        lines = []
        for index, (document, text) in enumerate(zip(workload.documents, workload.texts, strict=True)):
            path = Path(tmp) / f"document-{index}.png"
            path.write_bytes(document)
            lines.append(f"{path}\t{' '.join(word.lower() for word in text.split()[:3])}\n")
        manifest.write_text("".join(lines))
        script = Path(tmp) / "post.lua"
        query = "&".join(f"{name}={value}" for name, value in params.items())
        script.write_text(
            WRK_SCRIPT
            % {"manifest": manifest, "budget": max_requests, "content_type": "image/png", "path": f"/v1/ocr?{query}"}
        )
        ok_before, failed_before, _ = server_ocr_counts(server)
        generator_before = children_cpu_seconds()
        cpu_before = server.cpu_seconds
        started = time.perf_counter()
        command = [WRK or "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "600s", "-s", str(script)]
        completed = subprocess.run(
            [*command, server.base_url], capture_output=True, text=True, timeout=seconds + 120, check=True
        )
        generator_cpu = children_cpu_seconds() - generator_before
        wait_until_idle(server, 600)
        elapsed = time.perf_counter() - started
        cpu = server.cpu_seconds - cpu_before
        ok_after, failed_after, _ = server_ocr_counts(server)
    match = re.search(r"^CATALYST-WRK (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)$", completed.stdout, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    _answered, wrong, failed, socket_errors, p50, p95 = match.groups()
    return LoadResult(
        completed=ok_after - ok_before,
        failed=max(int(failed) + int(socket_errors), failed_after - failed_before),
        wrong=int(wrong),
        elapsed=elapsed,
        cpu_seconds=cpu,
        generator="wrk",
        generator_cpu_seconds=generator_cpu,
        p50_ms=float(p50),
        p95_ms=float(p95),
    )


async def service_load(
    client: httpx.AsyncClient,
    server: Server,
    workload: Workload,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
    params: dict[str, str],
    use_wrk: bool,
) -> LoadResult:
    """A throughput round from wrk (see the module docstring) or, without it, httpx from this process."""
    if use_wrk:
        return await asyncio.to_thread(
            wrk_load,
            server,
            workload,
            connections=concurrency,
            seconds=seconds,
            max_requests=max_requests,
            params=params,
        )
    cpu_before = time.process_time()
    result = await http_load(
        client,
        workload,
        concurrency=concurrency,
        seconds=seconds,
        max_requests=max_requests,
        params=params,
        server=server,
    )
    result.generator, result.generator_cpu_seconds = "httpx", time.process_time() - cpu_before
    return result


async def warm_up(client: httpx.AsyncClient, workload: Workload, workers: int) -> None:
    """Every worker thread loads its model before anything is timed."""
    await http_load(client, workload, concurrency=workers, seconds=30, max_requests=2 * workers, params=SERVICE_QUERY)


async def peak_for_largest_page(server: Server, client: httpx.AsyncClient, max_pixels: int) -> tuple[int, int]:
    """(RSS before, peak RSS) while the service recognises one page of `max_pixels` pixels."""
    side = int(max_pixels**0.5)
    lines = [f"largest page line {row} with a few words" for row in range(60)]
    page = render_lines(lines, font_size=60, margin=300, size=(side, side))
    document = encode(page, "PNG", dpi=(DPI, DPI))
    return await peak_rss_while_recognising(server, client, document)


async def probe_livez(probe: httpx.AsyncClient, running: asyncio.Future[Any], limit: float) -> list[float]:
    """GET /livez every 10 ms until `running` is done (at most `limit` seconds): each probe's latency in ms."""
    latencies: list[float] = []
    end = time.perf_counter() + limit
    for _ in range(int(limit * 100) + 1):
        if running.done() or time.perf_counter() >= end:
            break
        started = time.perf_counter()
        (await probe.get("/livez")).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.01)
    return latencies


def slowest(latencies: list[float]) -> tuple[float, float]:
    """(slowest, p99) of probe latencies in ms."""
    if not latencies:
        return float("nan"), float("nan")
    ordered = sorted(latencies)
    return ordered[-1], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def livez_during_formats(base_url: str, document: bytes) -> None:
    """Section 4 of the module docstring: the event loop's responsiveness while each format renders."""
    print("\n/livez while one A4 page is recognised and rendered (defaults: preprocess=auto), target <= 100 ms:")
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=600) as client,
        httpx.AsyncClient(base_url=base_url, timeout=30) as probe,
    ):
        for fmt in FORMATS:
            started = time.perf_counter()
            posting = asyncio.ensure_future(client.post("/v1/ocr", params={"format": fmt}, content=document))
            latencies = await probe_livez(probe, posting, limit=600)
            response = await posting
            top, p99 = slowest(latencies)
            print(
                f"  format={fmt:<5} answer {response.status_code} after {time.perf_counter() - started:6.2f} s"
                f"   /livez slowest {top:7.1f} ms, p99 {p99:7.1f} ms over {len(latencies)} probes",
                flush=True,
            )


JOBS_POLL_SECONDS = 0.25
"""How often the jobs figure lists the jobs. The span ends at the last job's own `finished_at`, so
the poll only decides when the benchmark notices, not the figure; rarer polls leave the cores to
the jobs (every poll lists every job: JSON the server builds and this process parses)."""


async def job_throughput(
    base_url: str, server: Server, workload: Workload, limit: float, *, probe_livez_meanwhile: bool
) -> tuple[LoadResult, list[float]]:
    """Section 5 of the module docstring: every document of `workload` as a single-page job, all at once.

    Returns the jobs' pages per second (first submission to the last job's `finished_at`, server
    CPU over that span, this process's CPU as the load generator's) and, when asked, the /livez
    latencies meanwhile (probing every 10 ms costs the cores too, so the throughput figure comes
    from a batch without it).
    """
    result = LoadResult(generator=f"this process (httpx; GET /v1/jobs every {JOBS_POLL_SECONDS:g} s)")
    headers = {"content-type": "image/png"}
    params = {"format": "text", "preprocess": "none"}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=600) as client,
        httpx.AsyncClient(base_url=base_url, timeout=30) as probe,
    ):
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        probing = asyncio.ensure_future(probe_livez(probe, done, limit)) if probe_livez_meanwhile else None
        started = time.time()  # wall clock: the server's finished_at is wall clock on this same machine
        cpu_before, client_cpu_before = server.cpu_seconds, time.process_time()
        pending: dict[str, int] = {}
        for index, document in enumerate(workload.documents):
            response = await client.post("/v1/jobs", content=document, headers=headers, params=params)
            if response.status_code != 202:
                result.failed += 1
                continue
            pending[response.json()["id"]] = index
        end = time.perf_counter() + limit
        succeeded: list[tuple[str, int]] = []
        finished: list[float] = []
        while pending and time.perf_counter() < end:
            await asyncio.sleep(JOBS_POLL_SECONDS)
            for job in await listed_jobs(client):
                if job["id"] not in pending or job["status"] not in FINAL_STATUSES:
                    continue
                index = pending.pop(job["id"])
                if job["status"] != JobStatus.SUCCEEDED:
                    result.failed += 1
                    continue
                result.completed += 1
                finished.append(datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")).timestamp())
                succeeded.append((job["id"], index))
        result.cpu_seconds = server.cpu_seconds - cpu_before
        result.generator_cpu_seconds = time.process_time() - client_cpu_before
        result.elapsed = max(finished, default=started) - started
        result.failed += len(pending)
        done.set_result(None)
        latencies = await probing if probing is not None else []
        for job_id, index in succeeded:  # checked after the timed span: reading results is not the jobs' work
            text = (await client.get(f"/v1/jobs/{job_id}/result", params={"format": "text"})).text
            result.wrong += not first_words_match(text, workload.texts[index])
    return result, latencies


async def listed_jobs(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every job through `GET /v1/jobs` (a page of 100 at a time): one poll costs the server a request
    or two, not one per job, so the figure measures the jobs rather than a client polling each of them."""
    jobs: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "100"}
    while True:
        answer = (await client.get("/v1/jobs", params=params)).json()
        jobs += answer["jobs"]
        if not answer.get("next_cursor"):
            return jobs
        params = {"limit": "100", "cursor": answer["next_cursor"]}


def paragraph(seed: int) -> tuple[Image.Image, str]:
    """A paragraph crop (6 lines of 9 words at about 12 pt, 300 DPI): the pages of the jobs figure."""
    body = [" ".join(words(seed * 100 + line, 9)) for line in range(6)]
    return render_lines(body, font_size=50, margin=60), "\n".join(body)


async def jobs_figures(args: argparse.Namespace, server: Server) -> None:
    """Job throughput against the raw engine (threads and processes) on the same paragraph crops."""
    workload = build_workload("paragraph crops", paragraph, args.jobs)
    window = args.seconds
    threads: list[LoadResult] = []
    processes: list[LoadResult] = []
    batches: list[LoadResult] = []
    for _ in range(args.rounds):  # alternating, best of each, as the throughput rounds above
        threads.append(await asyncio.to_thread(raw_throughput, workload, args.workers, window, args.max_requests))
        processes.append(
            await asyncio.to_thread(raw_throughput_processes, workload, args.workers, window, args.max_requests)
        )
        batch, _ = await job_throughput(server.base_url, server, workload, limit=600, probe_livez_meanwhile=False)
        batches.append(batch)
    raw = {"threads": best(threads), "processes": best(processes)}
    jobs = best(batches)
    jobs.failed, jobs.wrong = sum(b.failed for b in batches), sum(b.wrong for b in batches)  # any batch's show
    probed, latencies = await job_throughput(server.base_url, server, workload, limit=600, probe_livez_meanwhile=True)
    print(
        f"\njobs: {args.jobs} single-page jobs of {workload.name} submitted at once "
        "(every format a job stores up front), "
        f"vs the raw engine on the same images (target >= 0.9x); best of {args.rounds} alternating rounds:",
        flush=True,
    )
    report_load(f"{workload.name}: raw engine", raw["threads"])
    report_load(f"{workload.name}: raw engine, processes", raw["processes"])
    report_load(f"{workload.name}: jobs, pages", jobs, raw)
    top, p99 = slowest(latencies)
    trouble = f"; failed={probed.failed} wrong={probed.wrong}" if probed.failed or probed.wrong else ""
    print(
        f"  /livez during the jobs (the same jobs again, probed every 10 ms): slowest {top:.1f} ms, p99 {p99:.1f} ms "
        f"over {len(latencies)} probes; that batch {probed.per_second:.2f} pages/s = "
        f"{ratio(probed.per_second, raw['processes'].per_second)} of raw processes{trouble}",
        flush=True,
    )


def page_kind_documents(max_pixels: int) -> dict[str, bytes]:
    """One text page of `max_pixels` as PNG in each sample format a client may send: 8-bit grey,
    16-bit grey and RGB (the worst accepted pages for memory: more bytes per pixel to decode)."""
    side = int(max_pixels**0.5)
    lines = [f"page kind line {row} with a few words" for row in range(60)]
    grey = render_lines(lines, font_size=60, margin=300, size=(side, side))
    sixteen = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)  # mode I;16, the same page
    rgb = Image.merge("RGB", (grey, grey.point(lambda v: min(255, v + 8)), grey))  # a faint green tint
    return {
        "8-bit grey": encode(grey, "PNG", dpi=(DPI, DPI)),
        "16-bit grey": encode(sixteen, "PNG", dpi=(DPI, DPI)),
        "RGB": encode(rgb, "PNG", dpi=(DPI, DPI)),
    }


async def peak_rss_while_recognising(server: Server, client: httpx.AsyncClient, document: bytes) -> tuple[int, int]:
    """(RSS before, peak RSS) while the service recognises `document` (JSON, preprocess=auto)."""
    before = server.rss_bytes
    peak = before
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, server.rss_bytes)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    response = await client.post("/v1/ocr", params={"format": "json"}, content=document, timeout=600)
    sampling = False
    await sampler
    if response.status_code != 200:
        raise RuntimeError(f"page memory: {response.status_code} {response.text[:200]}")
    return before, peak


async def report_page_kind_memory(server: Server, client: httpx.AsyncClient, max_pixels: int) -> None:
    """The README's sizing is per page of the worst accepted kind: measure each kind, one at a time."""
    for kind, document in page_kind_documents(max_pixels).items():
        before, peak = await peak_rss_while_recognising(server, client, document)
        print(
            f"  one {kind} page of {max_pixels / 1e6:.0f} Mpx ({len(document) / 1e6:.1f} MB PNG): RSS "
            f"{before / 2**20:.0f} MiB -> peak {peak / 2**20:.0f} MiB (+{(peak - before) / 2**20:.0f} MiB)",
            flush=True,
        )


# --- the run ---------------------------------------------------------------------------------


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference else "n/a"


def report_load(label: str, result: LoadResult, references: dict[str, LoadResult] | None = None) -> None:
    """One throughput line; with `references` (raw engine runs by name) its ratios to each."""
    line = (
        f"  {label:<48} {result.per_second:8.2f} img/s   p50 {result.percentile(0.5):8.1f} ms"
        f"   p95 {result.percentile(0.95):8.1f} ms   cpu {result.cpu_ms_per_image:7.1f} ms/img   n={result.completed}"
    )
    if result.failed or result.wrong:
        line += f"   failed={result.failed} wrong={result.wrong}"
    if result.generator and result.completed:
        line += (
            f"\n  {'':<48} load generator {result.generator}: "
            f"{result.generator_cpu_seconds * 1000 / result.completed:.2f} ms CPU per image "
            f"= {100 * result.generator_cpu_seconds / result.cpu_seconds:.1f}% of the server's CPU"
        )
    if references:
        speed = ", ".join(
            f"{ratio(result.per_second, ref.per_second)} of raw {name}" for name, ref in references.items()
        )
        cpu = ", ".join(
            f"{ratio(ref.cpu_ms_per_image, result.cpu_ms_per_image)} of raw {name}" for name, ref in references.items()
        )
        line += f"\n  {'':<48} throughput {speed}; CPU efficiency {cpu}"
    print(line, flush=True)


def best(results: list[LoadResult]) -> LoadResult:
    """The fastest of several rounds: a shared machine only ever makes a round slower."""
    return max(results, key=lambda result: result.per_second)


async def measure(args: argparse.Namespace, workloads: list[Workload]) -> None:
    workers = args.workers
    concurrency = 2 * workers
    with running_server(workers, queue_size=4 * concurrency) as server:
        limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=600, limits=limits) as client:
            for _ in range(300):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            await warm_up(client, workloads[0], workers)

            use_wrk = args.generator == "wrk"
            generator = "wrk (1 thread)" if use_wrk else "httpx in this process"
            print(
                f"throughput: raw capi engine ({workers} threads, then {workers} processes, one warm recognizer "
                f"each) vs the service "
                f"({workers} workers, {concurrency} requests in flight over loopback HTTP from {generator}); "
                f"best of {args.rounds} alternating rounds of {args.seconds:g} s"
                + f" ({3 * args.seconds:g} s for A4 pages)",
                flush=True,
            )
            for workload in workloads:
                window = window_seconds(args, workload)
                raw_rounds: list[LoadResult] = []
                process_rounds: list[LoadResult] = []
                service_rounds: list[LoadResult] = []
                for _ in range(args.rounds):
                    raw_rounds.append(
                        await asyncio.to_thread(
                            raw_throughput, workload, workers, window, workload_limit(args, workload)
                        )
                    )
                    process_rounds.append(
                        await asyncio.to_thread(
                            raw_throughput_processes, workload, workers, window, workload_limit(args, workload)
                        )
                    )
                    service_rounds.append(
                        await service_load(
                            client,
                            server,
                            workload,
                            concurrency=concurrency,
                            seconds=window,
                            max_requests=workload_limit(args, workload),
                            params=SERVICE_QUERY,
                            use_wrk=use_wrk,
                        )
                    )
                raw = {"threads": best(raw_rounds), "processes": best(process_rounds)}
                report_load(f"{workload.name}: raw engine", raw["threads"])
                report_load(f"{workload.name}: raw engine, processes", raw["processes"])
                report_load(f"{workload.name}: service, text, preprocess=none", best(service_rounds), raw)
                if args.with_defaults:
                    defaults = await service_load(
                        client,
                        server,
                        workload,
                        concurrency=concurrency,
                        seconds=window,
                        max_requests=workload_limit(args, workload),
                        params={"format": "json", "preprocess": "auto"},
                        use_wrk=use_wrk,
                    )
                    report_load(f"{workload.name}: service, json, preprocess=auto", defaults, raw)

            receipts = workloads[0]
            idle = await asyncio.to_thread(idle_latencies, server.base_url, receipts, args.idle_requests)
            print(
                f"\nidle latency, {receipts.name}, one request at a time (interleaved with the raw engine):\n"
                f"  service p50 {idle.service_ms:.1f} ms vs one warm recognition {idle.engine_ms:.1f} ms = "
                f"{ratio(idle.service_ms, idle.engine_ms)} (target <= 1.2x)\n"
                f"  where the difference goes: the client (httpx) and loopback HTTP alone, GET /livez, "
                f"p50 {idle.livez_ms:.2f} ms; the rest is the upload and the server's own work for the request",
                flush=True,
            )
            if use_wrk:
                lone = await asyncio.to_thread(
                    wrk_load,
                    server,
                    receipts,
                    connections=1,
                    seconds=min(args.seconds, 5.0),
                    max_requests=args.max_requests,
                    params=SERVICE_QUERY,
                )
                print(
                    f"  with wrk as the client (1 connection, {lone.completed} requests): service p50 "
                    f"{lone.percentile(0.5):.1f} ms = {ratio(lone.percentile(0.5), idle.engine_ms)} of one warm "
                    "recognition"
                    + (f"   failed={lone.failed} wrong={lone.wrong}" if lone.failed or lone.wrong else ""),
                    flush=True,
                )

            livez_page = encode(a4_page(7, lines=args.livez_lines)[0], "PNG", dpi=(DPI, DPI))
            await livez_during_formats(server.base_url, livez_page)
            await jobs_figures(args, server)

            print(f"\nmemory: server RSS across {args.memory_requests} receipt requests (json, preprocess=auto)")
            samples: list[int] = []
            memory = await http_load(
                client,
                receipts,
                concurrency=workers,
                seconds=args.seconds * 10,
                max_requests=args.memory_requests,
                params={"format": "json", "preprocess": "auto"},
                on_response=lambda: samples.append(server.rss_bytes),
            )
            if samples:
                settled = samples[max(0, len(samples) // 10 - 1)]
                mib = 1024 * 1024
                print(
                    f"  after {len(samples) // 10} requests {settled / mib:.1f} MiB, after {len(samples)} "
                    f"{samples[-1] / mib:.1f} MiB (growth {(samples[-1] - settled) / mib:+.1f} MiB), "
                    f"highest {max(samples) / mib:.1f} MiB; failed={memory.failed}",
                    flush=True,
                )
            await report_page_kind_memory(server, client, args.page_kind_pixels)
            if args.peak_page:
                before, peak = await peak_for_largest_page(server, client, args.max_pixels)
                print(
                    f"  one page of {args.max_pixels / 1e6:.0f} Mpx (the OCR_MAX_PIXELS default): RSS "
                    f"{before / 2**20:.0f} MiB -> peak {peak / 2**20:.0f} MiB (+{(peak - before) / 2**20:.0f} MiB)",
                    flush=True,
                )


def is_full_page(workload: Workload) -> bool:
    return bool(workload.pixels_per_image > 1_000_000)


def window_seconds(args: argparse.Namespace, workload: Workload) -> float:
    """A4 pages take seconds each: a longer window keeps the count of finished pages meaningful
    (in --quick too: with 4 requests on 2 workers the first A4 answers come after ~3.5 s, so a 2 s
    window finished none and the ratio was 0/0)."""
    return float(args.seconds if not is_full_page(workload) else 3 * args.seconds)


def workload_limit(args: argparse.Namespace, workload: Workload) -> int:
    """Requests per window: bounded, and small for A4 pages in a quick run so windows end on time."""
    if args.quick and is_full_page(workload):
        return int(2 * args.workers)
    return int(args.max_requests)


@dataclass(frozen=True)
class IdleLatency:
    """p50s, in ms, of one request at a time: the service, a warm recognition, and GET /livez (HTTP alone)."""

    service_ms: float
    engine_ms: float
    livez_ms: float


def idle_latencies(base_url: str, workload: Workload, count: int) -> IdleLatency:
    """Lone service requests, lone warm recognitions and lone GET /livez, alternated so load hits all alike.

    httpx's synchronous client: with one request at a time an async client buys nothing and costs
    about half a millisecond more per request, which would be charged to the service.
    """
    service: list[float] = []
    engine: list[float] = []
    livez: list[float] = []
    api = CapiBackend().new_recognizer()
    with httpx.Client(base_url=base_url, timeout=600) as client:
        _recognise(api, workload.documents[0])
        client.post("/v1/ocr", params=SERVICE_QUERY, content=workload.documents[0]).raise_for_status()
        for index in range(count):
            document = workload.documents[index % len(workload.documents)]
            started = time.perf_counter()
            response = client.post("/v1/ocr", params=SERVICE_QUERY, content=document)
            service.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            started = time.perf_counter()
            _recognise(api, document)
            engine.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            client.get("/livez").raise_for_status()
            livez.append((time.perf_counter() - started) * 1000)
    api.close()
    return IdleLatency(statistics.median(service), statistics.median(engine), statistics.median(livez))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI smoke run: few images, short windows (about a minute)")
    parser.add_argument("--workers", type=int, default=available_cpus(), help="threads / service workers")
    parser.add_argument("--seconds", type=float, help="length of each throughput window")
    parser.add_argument(
        "--generator",
        choices=("wrk", "httpx"),
        default="wrk" if WRK else "httpx",
        help="load generator of the throughput rounds (default: wrk when installed)",
    )
    parser.add_argument("--jobs", type=int, help="single-page jobs submitted at once (default 28; 4 with --quick)")
    args = parser.parse_args()
    if args.generator == "wrk" and WRK is None:
        parser.error("wrk is not installed (scripts/install-system-deps.sh --dev installs it)")
    quick = args.quick
    args.seconds = args.seconds or (2.0 if quick else 15.0)
    args.rounds = 1 if quick else 2
    args.max_requests = 400 if quick else 20_000
    args.idle_requests = 15 if quick else 60
    args.memory_requests = 100 if quick else 1000
    args.with_defaults = not quick
    args.peak_page = not quick
    args.max_pixels = 40_000_000
    args.jobs = args.jobs or (4 if quick else 28)
    args.livez_lines = 8 if quick else 40

    args.page_kind_pixels = 2_000_000 if quick else args.max_pixels

    workloads = [
        build_workload("receipt lines", receipt_line, 8 if quick else 32),
        build_workload("A4 pages, 300 DPI", a4_page, 2 if quick else 4),
    ]
    started = time.perf_counter()
    asyncio.run(measure(args, workloads))
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
