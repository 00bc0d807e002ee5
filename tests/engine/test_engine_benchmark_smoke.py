"""`benchmarks/engines.py --quick` runs end to end and prints both workloads with their ratios."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from suite_support import run_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engine")]


def test_engines_benchmark_quick_run(repo_root: Path) -> None:
    out = run_benchmark(repo_root, "engines.py", "--quick", timeout=180).stdout
    for workload in ("receipt line", "A4 page"):
        assert re.search(rf"^{workload}.*tesserocr\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
        assert re.search(rf"^{workload}.*pytesseract\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
        assert re.search(rf"^{workload}.*ratio\s+[\d.]+x", out, re.M), out
