"""The wheel (what the production image installs) carries the files the service serves.

`/docs` and `/demo` are answered from package data; a file type missing from
`[tool.setuptools.package-data]` would pass every test run from the checkout and 404 in the
image. The wheel is built from a copy of the sources, so the checkout gets no build/ or egg-info.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging_support import REPO

SERVED_DIRS = ["ocr_service/http/static/demo", "ocr_service/http/static/swagger-ui"]


def test_the_wheel_ships_every_file_the_demo_page_and_docs_serve(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("ocr_service", "client", "operator"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=180,
    )
    (wheel,) = tmp_path.glob("catalyst_ocr-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for directory in SERVED_DIRS:
        wanted = {path.relative_to(REPO).as_posix() for path in (REPO / directory).iterdir() if path.is_file()}
        assert wanted, directory
        assert wanted <= shipped, sorted(wanted - shipped)
    assert "ocr_service/http/static/demo/index.html" in shipped
