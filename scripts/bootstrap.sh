#!/usr/bin/env bash
# One step from a fresh Debian/Ubuntu machine to a working checkout:
# system packages (scripts/install-system-deps.sh, the same script the Dockerfile runs)
# and the pinned Python packages in .venv/ inside the repo.
#
#   scripts/bootstrap.sh            runtime + development/test dependencies (what scripts/test.sh needs)
#   scripts/bootstrap.sh --build    only what the service needs to run (and to build tesserocr)
#
# Versions have one source, requirements/lock.txt (the Dockerfile uses it too). --build installs
# the project's own dependencies with the lock as constraints, so nothing of the dev toolchain
# comes along; --dev installs the whole lock. A later --dev run adds the rest to a --build venv.
# Output is a few lines; everything the installers print goes to $CATALYST_SETUP_LOG
# (default .setup.log in the repo), whose tail is shown when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:---dev}"
case "$mode" in
  --build | --dev) ;;
  *) echo "usage: $0 [--build|--dev]" >&2; exit 2 ;;
esac
log="${CATALYST_SETUP_LOG:-$PWD/.setup.log}"
: >"$log"

# step "what" command...: run quietly into the log; on failure show its tail and stop.
step() {
  local what="$1"
  shift
  local started=$SECONDS
  printf '%s ... ' "$what"
  if "$@" >>"$log" 2>&1; then
    echo "done ($((SECONDS - started)) s)"
  else
    echo "FAILED"
    echo "--- last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

step "system packages (${mode#--})" bash scripts/install-system-deps.sh "$mode"

python="${PYTHON:-python3}"
# Debian/Ubuntu ship venv and the C headers (needed to build tesserocr) apart from python3.
if ! "$python" -c 'import ensurepip, sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
  step "python3-venv and headers" bash scripts/install-system-deps.sh --python
fi
[ -x .venv/bin/python ] || step "virtualenv .venv/" "$python" -m venv .venv

# Reinstall only when the lock or the project metadata changed; a dev install covers --build.
stamp=.venv/.catalyst-ocr-installed
hash=$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)
installed=$(cat "$stamp" 2>/dev/null || true)
if [ "$installed" != "dev $hash" ] && [ "$installed" != "${mode#--} $hash" ]; then
  pip=(.venv/bin/python -m pip install --disable-pip-version-check)
  # Playwright drives Debian's chromium (scripts/install-system-deps.sh): it must never fetch a browser.
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  step "pip, setuptools, wheel" "${pip[@]}" --upgrade pip setuptools wheel
  if [ "$mode" = "--build" ]; then
    step "python packages: runtime (lock as constraints)" "${pip[@]}" -c requirements/lock.txt -e ".[tesserocr]"
  else
    step "python packages: runtime + dev (whole lock)" "${pip[@]}" -r requirements/lock.txt
    step "the project, editable" "${pip[@]}" --no-deps --no-build-isolation -e .
  fi
  echo "${mode#--} $hash" >"$stamp"
fi
echo "ready: .venv/bin/catalyst-ocr (set-up log: $log)"
