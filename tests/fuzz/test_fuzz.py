"""The fuzz targets (issue 10): every reproducer ever found replays cleanly, and atheris runs each
target for a bounded time (`FUZZ_SECONDS`, 20 s per target by default) without finding a crash.

A crash leaves its input in `tests/fuzz/reproducers/<target>/` (atheris' `-artifact_prefix`):
commit it with the fix, and `test_reproducers_and_seeds_stay_fixed` keeps it fixed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_targets import REPRODUCERS, TARGETS, seeds

HERE = Path(__file__).resolve().parent
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "20"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_reproducers_and_seeds_stay_fixed(name: str) -> None:
    kept = sorted(path for path in (REPRODUCERS / name).glob("*") if path.is_file() and not path.name.startswith("."))
    inputs = [*seeds(name), *(path.read_bytes() for path in kept)]
    for data in inputs:
        TARGETS[name](data)  # returns, or raises an OcrError 4xx that the target accepts


@pytest.mark.slow
@pytest.mark.xdist_group("fuzz")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_atheris_finds_no_crash_in_bounded_time(name: str) -> None:
    before = set((REPRODUCERS / name).glob("*"))
    completed = subprocess.run(
        [sys.executable, str(HERE / "fuzz_targets.py"), name, f"-max_total_time={FUZZ_SECONDS}", "-rss_limit_mb=1024"],
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
        check=False,
    )
    found = sorted(set((REPRODUCERS / name).glob("*")) - before)
    assert completed.returncode == 0 and not found, (
        f"atheris found a crash in {name}; reproducer(s) kept: {[str(path) for path in found]}\n"
        + completed.stderr[-4000:]
    )
    assert "Done " in completed.stderr, completed.stderr[-2000:]
