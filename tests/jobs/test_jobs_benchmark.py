"""`benchmarks/jobs.py --quick` runs end to end: the job/sync and cache figures, then the change feed's.

The change-feed part starts its own PostgreSQL (as these tests do), two replicas served by uvicorn
and real SSE streams; the test checks that every figure is printed as a number and that stopping
the listeners really switched the replica to the fallback polls (more statements than with the
feed live). How much faster or quieter is the benchmark's business, not this test's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from suite_support import run_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("jobs-benchmark")]

NUMBER = r"(-?[\d.]+)"


def test_jobs_benchmark_quick_run(repo_root: Path) -> None:
    out = run_benchmark(repo_root, "jobs.py", "--quick", timeout=240).stdout
    for row in ("sync POST /v1/ocr", "job: submit -> result", "cache hit \\(same document again\\)"):
        assert re.search(rf"^{row}\s+[\d.]+ms$", out, re.M), out
    assert re.search(r"^ratio miss / hit\s+[\d.]+x$", out, re.M), out

    statements = re.search(rf"^idle, 10 SSE streams: statements\s+{NUMBER}st/s\s+{NUMBER}st/s\s+{NUMBER}x$", out, re.M)
    assert statements is not None, out
    live, off = float(statements[1]), float(statements[2])
    assert 0 < live < off, f"the listener stopped, yet the replica did not poll more: {out}"
    assert re.search(rf"^idle, 10 SSE streams: transactions\s+{NUMBER}tx/s\s+{NUMBER}tx/s\s+{NUMBER}x$", out, re.M)
    for row in ("claim on B after 202 on A \\(median\\)", "A writes progress -> B's stream \\(median\\)"):
        assert re.search(rf"^{row}\s+{NUMBER}ms\s+{NUMBER}ms\s+{NUMBER}x$", out, re.M), out
