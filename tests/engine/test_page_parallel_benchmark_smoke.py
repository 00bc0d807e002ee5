"""`benchmarks/page_parallel.py --quick` runs end to end: a real server cuts an idle A4 page and prints its ratios."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from suite_support import run_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engine")]


def test_page_parallel_benchmark_quick_run(repo_root: Path) -> None:
    out = run_benchmark(repo_root, "page_parallel.py", "--quick", timeout=300).stdout
    row = re.search(r"^\| (\d+) \| (\d+) \| (\d+) \| ([\d.]+)x \| (\d+) \| ([\d.]+)x \| \[(.*)\] \|$", out, re.M)
    assert row, out
    regions = [int(value) for value in row.group(7).split(", ")]
    if int(row.group(1)) > 1:
        assert max(regions) > 1, f"an idle service with several workers did not cut the page:\n{out}"
