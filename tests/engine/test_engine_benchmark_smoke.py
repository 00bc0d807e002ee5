"""`benchmarks/engines.py --quick` runs end to end and prints both workloads with their ratios."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engine")]


def test_engines_benchmark_quick_run(repo_root: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "engines.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        check=True,
    )
    out = completed.stdout
    for workload in ("receipt line", "A4 page"):
        assert re.search(rf"^{workload}.*tesserocr\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
        assert re.search(rf"^{workload}.*pytesseract\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
        assert re.search(rf"^{workload}.*ratio\s+[\d.]+x", out, re.M), out
