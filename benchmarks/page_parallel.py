"""One page on every core: idle latency against one warm engine run, a 4-page PDF, saturating throughput, accuracy.

    .venv/bin/python benchmarks/page_parallel.py              # latency, PDF and throughput (about 8 minutes on 2 cores)
    .venv/bin/python benchmarks/page_parallel.py --quick      # CI smoke run: latency on all workers only, 2 rounds
    .venv/bin/python benchmarks/page_parallel.py --pdf        # only the 4-page PDF (about 2 minutes)
    .venv/bin/python benchmarks/page_parallel.py --accuracy   # CER split against whole, per family (a few minutes)

In one run, on 300-DPI A4 pages from `benchmarks/_images.py` (PNG, 300 DPI metadata):

1. latency: a real `catalyst-ocr serve` subprocess per `OCR_WORKERS` value (1, 2, ..., all CPUs)
   with `OCR_PAGE_PARALLELISM=auto`, idle, one request at a time, `preprocess=none`, in `text`
   and in the default JSON. Each round also times one warm recognition of the same page by the
   service's own engine in this process (decode + SetImage + Recognize + GetUTF8Text, the
   reference of every ratio), alternated with the requests so machine noise hits both alike.
   Target (issue 13): p50 <= 0.7x the engine on an idle service with every core.
2. a 4-page PDF of such pages through `/v1/ocr` (`format=text`, `preprocess=none`) on the idle
   service with every core: target <= 1.1 x pages x engine time / cores, the engine time summed
   over the same 4 pages recognised one after another by one warm engine; and, for the physical
   limit, the same 4 pages on one warm engine per core in threads (each taking the next page).
3. saturating throughput: wrk with 2 x workers connections posting A4 pages, `auto` against
   `off` (today's behaviour) in alternating rounds on the same server build: target >= 0.95x.

`--accuracy` runs the pipeline in this process (the `capi` engine, 2 workers, the default
`preprocess=auto`) over the real scans of `../shared/ocr-corpus/` and the synthetic families of
`benchmarks/accuracy.py`, once with `OCR_PAGE_PARALLELISM=off` and once with `auto`, with the
size threshold lifted (every page whose layout allows a cut is cut, so the families test the cut,
not the threshold). CER (whitespace folded) per family, pages cut, and whether the text of the
multi-column scans is identical. Target: no family worse by more than 0.2 points.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _images import a4_page, encode
from PIL import Image
from service_throughput import DPI, Workload, _recognise, running_server, wrk_load

from ocr_service.engine.base import Recognizer
from ocr_service.engine.capi_engine import CapiBackend
from ocr_service.engine.cpus import available_cpus

TEXT_QUERY = {"format": "text", "preprocess": "none"}
JSON_QUERY = {"format": "json", "preprocess": "none"}
PDF_PAGES = 4


def a4_documents(count: int) -> tuple[list[bytes], list[str]]:
    pages = [a4_page(seed) for seed in range(1, count + 1)]
    return [encode(image, "PNG", dpi=(DPI, DPI)) for image, _ in pages], [text for _, text in pages]


def pdf_of(documents: list[bytes]) -> bytes:
    images = [Image.open(io.BytesIO(document)).convert("L") for document in documents]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", resolution=DPI, save_all=True, append_images=images[1:])
    return buffer.getvalue()


@dataclasses.dataclass
class Latency:
    workers: int
    engine_ms: list[float] = dataclasses.field(default_factory=list)
    text_ms: list[float] = dataclasses.field(default_factory=list)
    json_ms: list[float] = dataclasses.field(default_factory=list)
    parallel: set[int] = dataclasses.field(default_factory=set)

    def ratio(self, values: list[float]) -> float:
        return statistics.median(values) / statistics.median(self.engine_ms)


def timed_post(client: httpx.Client, query: dict[str, str], body: bytes, content_type: str = "image/png") -> float:
    started = time.perf_counter()
    response = client.post("/v1/ocr", params=query, content=body, headers={"content-type": content_type})
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def idle_latency(workers: int, documents: list[bytes], rounds: int) -> Latency:
    """Alternate: one warm engine run, one text request, one JSON request; `rounds` times."""
    os.environ["OCR_PAGE_PARALLELISM"] = "auto"
    figures = Latency(workers)
    engine = CapiBackend().new_recognizer()
    with running_server(workers, 0) as server, httpx.Client(base_url=server.base_url, timeout=600) as client:
        _recognise(engine, documents[0])
        timed_post(client, TEXT_QUERY, documents[0])
        for index in range(rounds):
            document = documents[index % len(documents)]
            started = time.perf_counter()
            _recognise(engine, document)
            figures.engine_ms.append((time.perf_counter() - started) * 1000)
            figures.text_ms.append(timed_post(client, TEXT_QUERY, document))
            started = time.perf_counter()
            response = client.post("/v1/ocr", params=JSON_QUERY, content=document)
            figures.json_ms.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            figures.parallel.add(int(response.json()["pages"][0]["timings"]["parallel"]))
    engine.close()
    return figures


@dataclasses.dataclass
class PdfFigures:
    service_ms: float
    """p50 of the 4-page PDF through `/v1/ocr` on the idle service."""
    engine_sum_ms: float
    """p50 of the 4 pages recognised one after another by one warm engine: pages x engine time."""
    engine_cores_ms: float
    """p50 of the same 4 pages on one warm engine per worker, each thread pulling the next page."""


def raw_on_threads(engines: list[Recognizer], documents: list[bytes]) -> float:
    """Wall time of `documents` recognised by `engines` in threads, each taking the next page as it frees."""
    pending = list(reversed(documents))
    lock = threading.Lock()

    def work(engine: Recognizer) -> None:
        while True:
            with lock:
                if not pending:
                    return
                document = pending.pop()
            _recognise(engine, document)

    threads = [threading.Thread(target=work, args=(engine,)) for engine in engines]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (time.perf_counter() - started) * 1000


def pdf_latency(workers: int, documents: list[bytes], rounds: int) -> PdfFigures:
    """The 4-page PDF on the idle service against the raw engine on the same pages, alternated per round."""
    os.environ["OCR_PAGE_PARALLELISM"] = "auto"
    pages = documents[:PDF_PAGES]
    pdf = pdf_of(pages)
    engines = [CapiBackend().new_recognizer() for _ in range(workers)]
    service, summed, cores = [], [], []
    with running_server(workers, 0) as server, httpx.Client(base_url=server.base_url, timeout=600) as client:
        timed_post(client, TEXT_QUERY, pdf, "application/pdf")
        for engine in engines:
            _recognise(engine, pages[0])
        for _ in range(rounds):
            summed.append(sum(raw_on_threads(engines[:1], [page]) for page in pages))
            cores.append(raw_on_threads(engines, pages))
            service.append(timed_post(client, TEXT_QUERY, pdf, "application/pdf"))
    for engine in engines:
        engine.close()
    return PdfFigures(statistics.median(service), statistics.median(summed), statistics.median(cores))


def saturating(workers: int, workload: Workload, rounds: int, seconds: float) -> dict[str, list[float]]:
    """A4 pages per second under wrk, `auto` and `off` alternated, one server per round."""
    rates: dict[str, list[float]] = {"off": [], "auto": []}
    for _ in range(rounds):
        for mode in ("off", "auto"):
            os.environ["OCR_PAGE_PARALLELISM"] = mode
            with running_server(workers, 0) as server:
                with httpx.Client(base_url=server.base_url, timeout=600) as client:
                    timed_post(client, TEXT_QUERY, workload.documents[0])
                result = wrk_load(
                    server,
                    workload,
                    connections=2 * workers,
                    seconds=seconds,
                    max_requests=10_000,
                    params=TEXT_QUERY,
                )
            if result.failed or result.wrong:
                raise SystemExit(f"{mode}: {result.failed} failed and {result.wrong} wrong answers under load")
            rates[mode].append(result.per_second)
    return rates


# -- accuracy -----------------------------------------------------------------------------------


def accuracy_pages(samples: int) -> Iterator[tuple[str, str, bytes, str, str]]:
    """(family, name, PNG, language, truth) for the real scans and the synthetic families."""
    from _degrade import FAMILIES, sample
    from accuracy import CORPUS, CORPUS_PAGES

    if CORPUS.is_dir():
        for image_name, truth_name, lang in CORPUS_PAGES:
            yield "real scans", image_name, (CORPUS / image_name).read_bytes(), lang, (CORPUS / truth_name).read_text()
    for family in FAMILIES:
        for index in range(samples):
            page = sample(family, index)
            yield (
                family,
                f"{family} #{index}",
                encode(Image.fromarray(page.image), "PNG", dpi=(DPI, DPI)),
                "eng",
                page.truth,
            )
    for seed in range(1, samples + 1):
        image, truth = a4_page(seed)
        yield "A4 pages", f"A4 #{seed}", encode(image, "PNG", dpi=(DPI, DPI)), "eng", truth


async def accuracy(samples: int, min_lines: int) -> int:
    from accuracy import Tally, fold

    from ocr_service import page_parallel
    from ocr_service.options import OcrOptions, OutputFormat
    from ocr_service.pipeline import OcrPipeline
    from ocr_service.settings import Settings

    # Cut every page whose layout allows it, into groups of as few as `min_lines`: this run tests the
    # cut itself, on pages far smaller than the service would ever cut.
    page_parallel.MIN_PIXELS = 0
    page_parallel.MIN_LINES_PER_REGION = min_lines
    pipelines = {}
    for mode, limit in (("whole", 1), ("split", 0)):
        settings = Settings(
            engine="capi", workers=2, page_parallelism=limit, cache_ttl_seconds=0, max_pixels=60_000_000
        )
        pipelines[mode] = OcrPipeline(settings)
        await pipelines[mode].start()
    tallies: dict[str, dict[str, Tally]] = {}
    cut: dict[str, int] = {}
    identical_multi_column: dict[str, bool] = {}
    for family, name, document, lang, truth in accuracy_pages(samples):
        texts = {}
        for mode, pipeline in pipelines.items():
            options = OcrOptions(format=OutputFormat.JSON, lang=lang)
            outcome = await pipeline.run(document, options)
            page = outcome.result.pages[0]
            texts[mode] = page.text
            tallies.setdefault(family, {}).setdefault(mode, Tally()).add(page.text, truth, page.timings.recognize_ms)
            if mode == "split" and page.timings.parallel > 1:
                cut[family] = cut.get(family, 0) + 1
        if name.startswith(("8071", "8087")):
            identical_multi_column[name] = fold(texts["whole"]) == fold(texts["split"])
    for pipeline in pipelines.values():
        await pipeline.aclose()
    print("| family | pages | pages cut | CER whole | CER split | change (points) |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for family, sides in tallies.items():
        whole, split = sides["whole"], sides["split"]
        change = (split.cer - whole.cer) * 100
        worst = max(worst, change)
        print(
            f"| {family} | {whole.pages} | {cut.get(family, 0)} | {whole.cer:.2%} | {split.cer:.2%} | {change:+.2f} |"
        )
    for name, same in identical_multi_column.items():
        print(f"\n`{name}`: text {'identical' if same else 'DIFFERENT'} split against whole (reading order)")
    print(f"\nWorst family change: {worst:+.2f} points (target <= +0.20).")
    return 0 if worst <= 0.2 and all(identical_multi_column.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="latency on all workers only, two rounds")
    parser.add_argument("--accuracy", action="store_true", help="CER split against whole per family")
    parser.add_argument("--pdf", action="store_true", help="only the 4-page PDF")
    parser.add_argument("--rounds", type=int, default=0, help="latency rounds per worker count (default 5)")
    parser.add_argument("--samples", type=int, default=3, help="--accuracy: synthetic pages per family")
    parser.add_argument("--min-lines", type=int, default=2, help="--accuracy: fewest lines in one region")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of one saturating round")
    args = parser.parse_args()
    if args.accuracy:
        return asyncio.run(accuracy(args.samples, args.min_lines))
    cores = available_cpus()
    rounds = args.rounds or (2 if args.quick else 5)
    documents, texts = a4_documents(PDF_PAGES)
    print(f"# Page parallelism on {cores} CPUs, 300-DPI A4 pages, idle service, p50 of {rounds} rounds\n")
    counts = [] if args.pdf else [cores] if args.quick else sorted({1, 2, cores})
    if counts:
        print("| OCR_WORKERS | engine (ms) | text (ms) | text / engine | JSON (ms) | JSON / engine | regions |")
        print("|---:|---:|---:|---:|---:|---:|---|")
    for workers in counts:
        figures = idle_latency(workers, documents, rounds)
        print(
            f"| {workers} | {statistics.median(figures.engine_ms):.0f} | {statistics.median(figures.text_ms):.0f}"
            f" | {figures.ratio(figures.text_ms):.2f}x | {statistics.median(figures.json_ms):.0f}"
            f" | {figures.ratio(figures.json_ms):.2f}x | {sorted(figures.parallel)} |",
            flush=True,
        )
    if args.quick:
        return 0
    pdf = pdf_latency(cores, documents, max(2, rounds // 2))
    bound = 1.1 * pdf.engine_sum_ms / cores
    print(
        f"\n{PDF_PAGES}-page PDF on {cores} workers: {pdf.service_ms:.0f} ms. One engine on its pages one after"
        f" another: {pdf.engine_sum_ms:.0f} ms; target <= 1.1 x {pdf.engine_sum_ms:.0f} / {cores} = {bound:.0f} ms:"
        f" {pdf.service_ms / bound:.2f}x of the target. The raw engine on all {cores} cores, a thread each"
        f" pulling the next page: {pdf.engine_cores_ms:.0f} ms;"
        f" service / that = {pdf.service_ms / pdf.engine_cores_ms:.2f}x",
        flush=True,
    )
    if args.pdf:
        return 0
    workload = Workload("A4", 0, documents, texts)
    rates = saturating(cores, workload, 2, args.seconds)
    off, auto = statistics.median(rates["off"]), statistics.median(rates["auto"])
    print(
        f"\nSaturating ({2 * cores} wrk connections, {args.seconds:g} s rounds): off {off:.2f} pages/s,"
        f" auto {auto:.2f} pages/s: auto/off = {auto / off:.2f}x (rounds: off {rates['off']}, auto {rates['auto']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
