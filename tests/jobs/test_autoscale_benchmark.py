"""`benchmarks/autoscale_sim.py --quick` runs end to end: real page times measured, then both
autoscaling policies replayed on the same arrivals; every figure is printed and no page is lost.
Which policy wins is the benchmark's business (docs/deploy.md quotes it), not this test's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from suite_support import run_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("jobs-benchmark")]


def test_autoscale_simulation_quick_run(repo_root: Path) -> None:
    out = run_benchmark(repo_root, "autoscale_sim.py", "--quick", timeout=240).stdout
    assert re.search(r"^  p50 [\d.]+s  mean [\d.]+s  max [\d.]+s$", out, re.M), out
    for policy in ("cpu-hpa", "queue-depth"):
        row = re.search(rf"^{policy}\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)$", out, re.M)
        assert row is not None, out
        assert int(row[5]) == 0, f"{policy} lost pages: {out}"
        assert float(row[2]) <= float(row[3]), "p50 <= p95"
