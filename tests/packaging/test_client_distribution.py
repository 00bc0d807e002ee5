"""The client is installable on its own: `pip install ./client` needs httpx and nothing of the server."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging_support import REPO, project_version

CLIENT = REPO / "client"
ALLOWED_IMPORTS = {"httpx", "catalyst_ocr"}


def test_the_client_wheel_carries_only_the_client_and_requires_only_httpx(tmp_path: Path) -> None:
    source = tmp_path / "client"  # a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("catalyst_ocr_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"catalyst_ocr"}
    assert "catalyst_ocr/client.py" in names and "catalyst_ocr/py.typed" in names
    assert metadata.get_all("Requires-Dist") == ["httpx>=0.28"]
    assert metadata["Version"] == project_version(), "the client is released with the service it speaks to"


def test_the_client_imports_nothing_but_the_standard_library_and_httpx() -> None:
    for path in sorted((CLIENT / "catalyst_ocr").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            outside = {root for root in roots if root not in sys.stdlib_module_names} - ALLOWED_IMPORTS - {"__future__"}
            assert not outside, f"{path.name} imports {outside}"
