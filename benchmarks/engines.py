"""Warm tesserocr vs pytesseract (the CLI), on the same deterministic images, through the engine layer.

    .venv/bin/python benchmarks/engines.py            # the full run (a few minutes on 2 cores)
    .venv/bin/python benchmarks/engines.py --quick    # CI smoke run, well under 30 s

Both engines are driven exactly as the service drives them (`Recognizer.recognize` with the
JSON model, i.e. text + word boxes), on two workloads from `benchmarks/_images.py`: small
receipt-line crops, where loading the model dominates, and full 300-DPI A4 pages, where
recognition does. Two measurements per engine and workload:

- latency: one thread, images one after another, p50 and mean per image (after one warm-up),
  the two engines interleaved image by image so that a neighbour's load hits both alike;
- throughput: one thread per CPU this process may use (cgroup-aware), each with its own
  recognizer, all working through the same images; images per second, the best of alternating
  rounds (a shared machine only ever makes a run slower).

It prints a table with the tesserocr/pytesseract ratio for each. `auto` uses tesserocr because
these numbers say so (see `ocr_service/engine/backends.py`): the CLI pays process start-up and
model loading for every page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _images import a4_page, receipt_line

from ocr_service.documents import PixelArray
from ocr_service.engine.base import ASSUMED_DPI, EngineBackend, RecognitionRequest
from ocr_service.engine.cli_engine import PytesseractBackend
from ocr_service.engine.cpus import available_cpus
from ocr_service.engine.tesserocr_engine import TesserocrBackend

REQUEST = RecognitionRequest(page_number=1, lang="eng", psm=3, oem=1, dpi=ASSUMED_DPI, formats=frozenset())


@dataclass(frozen=True)
class Figures:
    p50_ms: float
    mean_ms: float
    throughput: float


def latencies(engines: dict[str, EngineBackend], images: list[PixelArray]) -> dict[str, list[float]]:
    """Per-image latency on one thread, the engines interleaved image by image so load changes hit both alike."""
    recognizers = {name: backend.new_recognizer() for name, backend in engines.items()}
    timings: dict[str, list[float]] = {name: [] for name in engines}
    try:
        for recognizer in recognizers.values():
            recognizer.recognize(images[0], REQUEST)  # warm-up: the warm engine loads its model here
        for image in images:
            for name, recognizer in recognizers.items():
                started = time.perf_counter()
                recognizer.recognize(image, REQUEST)
                timings[name].append((time.perf_counter() - started) * 1000)
        return timings
    finally:
        for recognizer in recognizers.values():
            recognizer.close()


def throughput(backend: EngineBackend, images: list[PixelArray], threads: int) -> float:
    """Images per second with `threads` workers sharing one list of work (each warmed first)."""
    recognizers = [backend.new_recognizer() for _ in range(threads)]
    for recognizer in recognizers:
        recognizer.recognize(images[0], REQUEST)
    lock = threading.Lock()
    queue = list(range(len(images)))

    def worker(index: int) -> None:
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop()
            recognizers[index].recognize(images[item], REQUEST)

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    for recognizer in recognizers:
        recognizer.close()
    return len(images) / elapsed


def measure(
    engines: dict[str, EngineBackend], images: list[PixelArray], threads: int, rounds: int
) -> dict[str, Figures]:
    """Latency (interleaved) and the best throughput of `rounds` alternating runs per engine."""
    timings = latencies(engines, images)
    best = {name: 0.0 for name in engines}
    for _ in range(rounds):
        for name, backend in engines.items():
            best[name] = max(best[name], throughput(backend, images, threads))
    return {
        name: Figures(statistics.median(timings[name]), statistics.fmean(timings[name]), best[name]) for name in engines
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small CI smoke run (< 30 s)")
    args = parser.parse_args()
    threads = available_cpus()
    if args.quick:
        workloads = {
            "receipt line": [np.asarray(receipt_line(seed)[0]) for seed in range(8)],
            "A4 page (12 lines)": [np.asarray(a4_page(seed, lines=12)[0]) for seed in range(threads)],
        }
    else:
        workloads = {
            "receipt line": [np.asarray(receipt_line(seed)[0]) for seed in range(60)],
            "A4 page": [np.asarray(a4_page(seed)[0]) for seed in range(2 * threads)],
        }
    engines: dict[str, EngineBackend] = {"tesserocr": TesserocrBackend(), "pytesseract": PytesseractBackend()}
    print(f"threads for throughput: {threads} (cgroup-aware CPUs), OMP_THREAD_LIMIT={os.environ['OMP_THREAD_LIMIT']}")
    header = f"{'workload':<20} {'engine':<12} {'p50 ms':>9} {'mean ms':>9} {'img/s':>8}"
    print(header)
    print("-" * len(header))
    rounds = 1 if args.quick else 2
    for workload, images in workloads.items():
        results = measure(engines, images, threads, rounds)
        for name, figures in results.items():
            print(
                f"{workload:<20} {name:<12} {figures.p50_ms:>9.1f} {figures.mean_ms:>9.1f} {figures.throughput:>8.2f}"
            )
        warm, cli = results["tesserocr"], results["pytesseract"]
        print(
            f"{workload:<20} {'ratio':<12} {'':>9} {'':>9} {warm.throughput / cli.throughput:>7.2f}x"
            f"   (p50 latency pytesseract/tesserocr: {cli.p50_ms / warm.p50_ms:.2f}x)"
        )


if __name__ == "__main__":
    main()
