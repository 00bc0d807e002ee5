"""The accuracy benchmark's CI smoke run: it runs, prints every family, and meets its targets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks._degrade import FAMILIES


@pytest.mark.slow
@pytest.mark.xdist_group("accuracy-benchmark")
@pytest.mark.timeout(240)
def test_quick_accuracy_benchmark_meets_the_targets(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/accuracy.py", "--quick", "--check"],
        cwd=repo_root,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    for family in FAMILIES:
        assert f"| {family} | 1 |" in result.stdout
    assert "MISSED" not in result.stdout
