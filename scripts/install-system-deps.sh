#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Catalyst OCR needs. The Dockerfile runs this same
# script, and so does the test set-up, so the image's install path is exercised on every CI run.
#
#   scripts/install-system-deps.sh [--runtime|--dev]
#
# --runtime (default): what the service needs at run time (Tesseract + languages + OSD).
# --build: also the compiler and headers tesserocr builds against (the image's builder stage).
# --dev: --build plus what the tests run: PostgreSQL and Redis servers, the font test pages are
#        rendered in, nginx (the compose proxy config), promtool (the alert rules), curl and jq
#        (tests/service/test_docs_commands.py runs the docs' shell examples), and chromium (the demo
#        page's browser test, driven by Playwright).
# --python: only python3-venv, python3-dev and pip, for a machine whose python3 lacks them.
# OCR_LANGUAGES (space separated Tesseract codes, default "eng deu fra") chooses language packs.
set -euo pipefail

mode="${1:---runtime}"
languages="${OCR_LANGUAGES:-eng deu fra}"

packages=(tesseract-ocr tesseract-ocr-osd)
for lang in $languages; do
  packages+=("tesseract-ocr-${lang//_/-}")
done

case "$mode" in
  --python) packages=(python3-venv python3-dev python3-pip) ;;
  --runtime) ;;
  --build) packages+=(libtesseract-dev libleptonica-dev pkg-config g++) ;;
  --dev) packages+=(libtesseract-dev libleptonica-dev pkg-config g++ postgresql redis-server fonts-dejavu-core nginx-light prometheus wrk jq curl chromium) ;;
  *) echo "usage: $0 [--runtime|--build|--dev|--python]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages already installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The image keeps no apt lists; a developer machine keeps them (harmless either way).
if [ "${OCR_CLEAN_APT_LISTS:-0}" = "1" ]; then $sudo rm -rf /var/lib/apt/lists/*; fi
