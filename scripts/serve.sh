#!/usr/bin/env bash
# Quick start: install what is missing, then run the service on embedded defaults
# (no PostgreSQL or Redis needed). Extra arguments go to `catalyst-ocr serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --build
exec .venv/bin/catalyst-ocr serve --host "${OCR_HOST:-127.0.0.1}" --port "${OCR_PORT:-8000}" "$@"
