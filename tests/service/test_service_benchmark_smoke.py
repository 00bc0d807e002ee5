"""`benchmarks/service_throughput.py --quick` runs end to end: every measurement printed, every answer right."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from suite_support import run_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("service-process")]


def test_service_benchmark_quick_run(repo_root: Path) -> None:
    out = run_benchmark(repo_root, "service_throughput.py", "--quick", timeout=240).stdout
    for workload in ("receipt lines", "A4 pages, 300 DPI"):
        assert re.search(rf"^  {workload}: raw engine\s+[\d.]+ img/s", out, re.M), out
        assert re.search(rf"^  {workload}: raw engine, processes\s+[\d.]+ img/s", out, re.M), out
        assert re.search(rf"^  {workload}: service, text, preprocess=none\s+[\d.]+ img/s", out, re.M), out
    ratios = r"throughput [\d.]+x of raw threads, [\d.]+x of raw processes; CPU efficiency [\d.]+x of raw threads"
    assert len(re.findall(ratios, out)) == 3, out  # receipt lines, A4 pages, jobs
    for fmt in ("json", "text", "hocr", "tsv", "alto", "pdf"):
        assert re.search(rf"format={fmt}\s+answer 200 after .* /livez slowest\s+[\d.]+ ms, p99\s+[\d.]+ ms", out), out
    assert re.search(r"^  paragraph crops: jobs, pages\s+[\d.]+ img/s", out, re.M), out
    assert re.search(r"/livez during the jobs \(the same jobs again, probed every 10 ms\): slowest [\d.]+ ms", out), out
    assert re.search(r"service p50 [\d.]+ ms vs one warm recognition [\d.]+ ms = [\d.]+x", out), out
    assert re.search(r"growth [+-][\d.]+ MiB", out), out
    for kind in ("8-bit grey", "16-bit grey", "RGB"):  # the sizing covers every kind of page
        assert re.search(rf"^  one {kind} page of \d+ Mpx .*peak \d+ MiB", out, re.M), out
    assert "failed=" not in out.replace("failed=0", ""), "every request must succeed with the right text"
    assert "wrong=" not in out, "every answer must contain the text drawn"
