"""The accuracy benchmark's CI smoke run: it runs, prints every family, and meets its targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from suite_support import run_benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks._degrade import FAMILIES


@pytest.mark.slow
@pytest.mark.xdist_group("accuracy-benchmark")
@pytest.mark.timeout(240)
def test_quick_accuracy_benchmark_meets_the_targets(repo_root: Path) -> None:
    result = run_benchmark(repo_root, "accuracy.py", "--quick", "--check", timeout=200)
    for family in FAMILIES:
        assert f"| {family} | 1 |" in result.stdout
    assert "MISSED" not in result.stdout


@pytest.mark.timeout(120)
def test_skew_report_covers_straight_and_tilted_one_line_crops(repo_root: Path) -> None:
    result = run_benchmark(repo_root, "accuracy.py", "--skew", timeout=100)
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith(("| receipt", "| short"))]
    assert {(row[1].strip(), row[2].strip()) for row in rows} == {
        (kind, angle) for kind in ("receipt line", "short words") for angle in ("+0", "+1", "-1", "+3", "-3")
    }
    straight_receipts = next(row for row in rows if row[1].strip() == "receipt line" and row[2].strip() == "+0")
    assert straight_receipts[5].strip() == "0/50"  # none deskewed
