#!/usr/bin/env bash
# Build the images and prove them the way a cluster runs them (scripts/test.sh runs this after
# pytest, so CI does; it runs alone too). A few minutes from scratch, under a minute when the
# Docker cache is warm. What it proves, as pytest tests in tests/images/ (CATALYST_TEST_IMAGES=1):
#   - the service image, under the operator's pod security context (uid 1000, read-only root,
#     emptyDirs, no capabilities, no-new-privileges), reads a real scan right, turns healthy and
#     drains on SIGTERM;
#   - the operator image, with the args, env and security context of
#     manifests/operator/deployment.yaml (and under an unknown uid), reconciles
#     manifests/samples/basic.yaml against a KMock API server;
#   - the service image runs a job on a real PostgreSQL and caches in a real Redis.
#
#   scripts/test-images.sh                  # extra arguments go to pytest
#   LOCAL_BASE_IMAGE=1 scripts/test-images.sh   # force the debootstrap base (default: only when
#                                               # python:3.11-slim-bookworm cannot be pulled)
# Needs root (or a running Docker engine): scripts/start-dockerd.sh installs and starts one.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_API_VERSION=${DOCKER_API_VERSION:-1.41} OMP_THREAD_LIMIT=1

timings=()
step() {  # step NAME COMMAND...: run it, keep its duration for the summary
    local name=$1 start status=0
    shift
    start=$(date +%s)
    "$@" || status=$?
    timings+=("$(printf '%-28s %4ss%s' "$name" "$(( $(date +%s) - start ))" "$([ "$status" -eq 0 ] || echo '  FAILED')")")
    return "$status"
}
summary() {
    echo "test-images: timings"
    printf '  %s\n' "${timings[@]}"
}
trap summary EXIT

# Always: a venv from the quick start (serve.sh) has only the runtime; the stamp makes this a no-op otherwise.
bash scripts/bootstrap.sh --dev
step "docker engine" bash scripts/start-dockerd.sh

if [ -z "${PYTHON_IMAGE:-}" ] && [ -z "${LOCAL_BASE_IMAGE:-}" ]; then
    if docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
        || timeout 60 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
        LOCAL_BASE_IMAGE=0
    else
        echo "test-images: no registry reachable: building the base image with debootstrap" >&2
        LOCAL_BASE_IMAGE=1
    fi
fi
if [ "${LOCAL_BASE_IMAGE:-0}" = "1" ] && [ -z "${PYTHON_IMAGE:-}" ]; then
    step "base image (debootstrap)" bash scripts/build-base-image.sh >/dev/null
    PYTHON_IMAGE=$(bash scripts/build-base-image.sh 2>/dev/null)
fi
export PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim-bookworm}

build_log=$(mktemp /tmp/catalyst-ocr-build.XXXXXX.log)
build() {
    if ! bash scripts/build-images.sh >/dev/null 2>"$build_log"; then
        tail -n 60 "$build_log" >&2
        return 1
    fi
    grep -E '^build-images: ' "$build_log" >&2
}
step "images (3 targets)" build
rm -f "$build_log"

step "image tests (pytest)" env CATALYST_TEST_IMAGES=1 .venv/bin/python -m pytest -p no:cacheprovider tests/images "$@"
