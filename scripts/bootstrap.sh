#!/usr/bin/env bash
# One step from a fresh Debian/Ubuntu machine to a working checkout:
# system packages (scripts/install-system-deps.sh, the same script the Dockerfile runs)
# and the pinned Python packages in .venv/ inside the repo.
#
#   scripts/bootstrap.sh            runtime + development/test dependencies
#   scripts/bootstrap.sh --build    only what the service needs to run (and to build tesserocr)
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:---dev}"
bash scripts/install-system-deps.sh "$mode"

python="${PYTHON:-python3}"
# Debian/Ubuntu ship venv and the C headers (needed to build tesserocr) apart from python3.
if ! "$python" -c 'import ensurepip, sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
  bash scripts/install-system-deps.sh --python
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

# Reinstall only when the lock or the project metadata changed.
stamp=.venv/.catalyst-ocr-installed
want=$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
  # Playwright drives Debian's chromium (scripts/install-system-deps.sh): it must never fetch a browser.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/python -m pip install --quiet -r requirements/lock.txt
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
echo "ready: .venv/bin/catalyst-ocr"
