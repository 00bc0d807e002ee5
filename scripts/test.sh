#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs what is missing
# (Tesseract, PostgreSQL, Redis, the pinned Python packages), lints, then runs pytest in
# parallel, then builds the images and runs them (scripts/test-images.sh). The tests start their
# own PostgreSQL and Redis on loopback in temp dirs. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --dev
export OMP_THREAD_LIMIT=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadgroup "$@"
# Then the images, built and run as a cluster runs them (tests/images, skipped above).
# SKIP_IMAGE_TESTS=1 leaves them out, e.g. on a machine without Docker or root.
if [ "${SKIP_IMAGE_TESTS:-0}" != "1" ]; then
  exec bash scripts/test-images.sh
fi
