#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs what is missing
# (Tesseract, PostgreSQL, Redis, the pinned Python packages), lints, then runs pytest in
# parallel. The tests start their own PostgreSQL and Redis on loopback in temp dirs.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --dev
export OMP_THREAD_LIMIT=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadgroup "$@"
