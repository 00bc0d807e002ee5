"""Every shell example in README.md and docs/*.md runs as written, or is excluded here with a reason.

The `sh` code blocks are split into commands (continuation lines and here-documents kept
together) and run with bash, in order, against a real `catalyst-ocr serve` on loopback, in a
directory holding scans from `../shared/ocr-corpus` under the names the docs use (`scan.png`,
`scan.tiff`, `scan.pdf`). The docs keep writing `localhost:8000` (and `localhost:8080` for the
proxy and kind); only the port is rewritten here. Job placeholders (`<id>`, `6f0c...`) become the
id of the job the previous command submitted. A command passes when it exits 0 and the service
answered none of its requests with a 4xx or 5xx (curl itself exits 0 on those).

A command that cannot run here is either run by a rule below (the programs that need Docker or
a cluster) or listed in `NOT_RUN` with the reason, so a new command in the docs is run, or
excluded on purpose.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from service_support import REPO_ROOT, ServerProcess, serve_process

pytestmark = pytest.mark.xdist_group("service-process")

CORPUS = REPO_ROOT.parent / "shared" / "ocr-corpus"
DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

NEEDS_INFRASTRUCTURE = re.compile(r"(^|[|;&(]\s*|\$\()\s*(docker|kubectl|helm|kind|skaffold|kustomize)\b")
"""These programs need a Docker engine or a Kubernetes cluster (none here; tests/images covers the images)."""

NOT_RUN: dict[str, str] = {
    "./scripts/serve.sh": "the quick start itself: installs, then serves in the foreground (this test runs the server)",
    "./scripts/test.sh": "the whole test suite, which includes this test",
    ".venv/bin/catalyst-ocr serve --host 127.0.0.1 --port 8000": "starts the server this test runs (with --port 0)",
    "scanimage --format=png | .venv/bin/catalyst-ocr ocr -": "needs a scanner; reading stdin is test_service_cli's",
    "pip install ./client": "installs into the environment; tests/packaging/test_client_distribution.py builds it",
    "cp .env.example .env": "writes the checkout's .env for compose (docker)",
    ".venv/bin/python benchmarks/service_throughput.py": "a 7-minute benchmark",
    ".venv/bin/python benchmarks/service_throughput.py --quick": "a benchmark (test_service_benchmark_smoke runs it)",
    ".venv/bin/python benchmarks/accuracy.py": "a benchmark of several minutes",
    ".venv/bin/python benchmarks/accuracy.py --quick": "a benchmark run",
    ".venv/bin/python benchmarks/accuracy.py --cost": "a benchmark run",
    ".venv/bin/python benchmarks/accuracy.py --skew": "a benchmark run",
    ".venv/bin/python benchmarks/jobs.py --part feed": "a 2-minute benchmark",
    ".venv/bin/python benchmarks/page_parallel.py": "an 8-minute benchmark",
    ".venv/bin/python benchmarks/page_parallel.py --accuracy": "a benchmark of several minutes",
    ".venv/bin/python benchmarks/page_parallel.py --pdf": "a 2-minute benchmark",
    ".venv/bin/python benchmarks/jobs.py --quick": "a benchmark run (tests/jobs/test_jobs_benchmark.py)",
    ".venv/bin/python benchmarks/operator_reconcile.py": "a benchmark run (tests/operator)",
    ".venv/bin/python benchmarks/autoscale_sim.py": "a benchmark of a few minutes",
    ".venv/bin/python benchmarks/autoscale_sim.py --quick": "a benchmark run (tests/jobs/test_autoscale_benchmark.py)",
    ".venv/bin/pytest tests/jobs -n 2 --dist loadgroup": "runs a part of this suite",
    ".venv/bin/pytest tests/operator -n auto --dist loadgroup": "runs a part of this suite",
    ".venv/bin/pytest -n auto --dist loadgroup tests/packaging": "runs a part of this suite",
    "scripts/build-base-image.sh": "builds a base image with debootstrap and Docker",
    "scripts/test-images.sh": "builds and runs the images (Docker, root)",
}
"""Exact commands (comments stripped) the docs may show and this test does not run, with why."""

NOT_RUN_PREFIXES: dict[str, str] = {
    "IMAGE_REGISTRY=": "builds and pushes images (Docker, a registry)",
    "LOCAL_BASE_IMAGE=1 ": "builds images (Docker)",
    "scripts/build-images.sh": "builds images (Docker)",
}

PLACEHOLDER = re.compile(r"<id>|6f0c\.\.\.")
LOCAL_ADDRESS = re.compile(r"localhost:(8000|8080)\b")
LOCATION = re.compile(r"^location: /v1/jobs/([0-9a-zA-Z-]+)", re.IGNORECASE | re.MULTILINE)
COMMAND_TIMEOUT = 120
EXPECTED_ERRORS: dict[str, int] = {
    "curl -s -X DELETE localhost:8000/v1/jobs/<id>": 409,  # the job above has succeeded by then: cancel is refused
}
"""Commands whose documented request answers with an error status on purpose."""


@dataclass(frozen=True)
class Command:
    source: str
    line: int
    text: str

    @property
    def key(self) -> str:
        """The command without comments or continuation breaks, as NOT_RUN names it."""
        lines = [strip_comment(line) for line in self.text.replace("\\\n", " ").splitlines()]
        return re.sub(r"\s+", " ", " ".join(lines)).strip()

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.key}"


def strip_comment(line: str) -> str:
    """`cmd   # note` -> `cmd`; a `#` inside quotes or glued to a word (`#anchor`) is not a comment."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def shell_commands(path: Path) -> list[Command]:
    """The commands of every ```sh block, each with its continuation lines and here-document."""
    commands: list[Command] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    in_block = False
    current: list[str] = []
    start = 0
    heredoc: str | None = None
    for number, line in enumerate(lines, 1):
        if not in_block:
            in_block = line.strip() == "```sh"
            continue
        if heredoc is None and line.strip() == "```":
            in_block = False
            continue
        if heredoc is not None:
            current.append(line)
            if line.strip() == heredoc:
                heredoc = None
                commands.append(Command(path.name, start, "\n".join(current)))
                current = []
            continue
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not current:
            start = number
        current.append(line)
        marker = re.search(r"<<-?\s*'?\"?(\w+)", strip_comment(line))
        if marker:
            heredoc = marker.group(1)
        elif not strip_comment(line).endswith(("\\", "|", "&&")):
            commands.append(Command(path.name, start, "\n".join(current)))
            current = []
    return commands


def reason_not_run(command: Command) -> str | None:
    key = command.key
    if NEEDS_INFRASTRUCTURE.search(key):
        return "needs Docker or a Kubernetes cluster"
    if key in NOT_RUN:
        return NOT_RUN[key]
    for prefix, reason in NOT_RUN_PREFIXES.items():
        if key.startswith(prefix):
            return reason
    return None


ALL_COMMANDS = [command for path in DOCUMENTS for command in shell_commands(path)]


def test_the_docs_show_commands_and_every_exclusion_is_still_in_them() -> None:
    keys = {command.key for command in ALL_COMMANDS}
    assert len(ALL_COMMANDS) > 50
    stale = sorted(set(NOT_RUN) - keys)
    assert not stale, f"NOT_RUN names commands no longer in the docs: {stale}"
    assert not set(EXPECTED_ERRORS) - keys
    assert all(LOCAL_ADDRESS.search(c.key) for c in ALL_COMMANDS if "curl" in c.key and "localhost" in c.key)


def test_the_examples_use_the_documented_address() -> None:
    """Examples talk to localhost:8000 (or the proxy's :8080); the test, not the docs, picks the real port."""
    for command in ALL_COMMANDS:
        for address in re.findall(r"(?:localhost|127\.0\.0\.1):(\d+)", command.key):
            assert address in ("8000", "8080", "9090", "3000"), command


EXCLUDED: dict[str, list[Command]] = {}
for _command in ALL_COMMANDS:
    _reason = reason_not_run(_command)
    if _reason is not None:
        EXCLUDED.setdefault(_reason, []).append(_command)


@pytest.mark.parametrize("reason", sorted(EXCLUDED))
def test_commands_not_run(reason: str) -> None:
    """One SKIPPED line per reason, naming the commands it excludes (pytest -rs lists them)."""
    commands = EXCLUDED[reason]
    names = "; ".join(f"{c.source}:{c.line}" for c in commands)
    pytest.skip(f"{len(commands)} command(s) not run ({reason}): {names}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scans under the docs' names, and `.venv` pointing at this interpreter's environment."""
    directory = tmp_path_factory.mktemp("docs-commands")
    phototest = Image.open(CORPUS / "phototest.tif")
    phototest.save(directory / "scan.png")
    shutil.copy(CORPUS / "phototest.tif", directory / "scan.tiff")
    pages = [phototest.convert("RGB")] * 3
    pages[0].save(directory / "scan.pdf", save_all=True, append_images=pages[1:], resolution=200.0)
    (directory / ".venv").symlink_to(Path(sys.prefix))
    return directory


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("docs-commands-data")
    with serve_process({"OCR_WORKERS": "1", "OCR_DATA_DIR": str(data)}) as running:
        deadline = time.monotonic() + 60
        while httpx.get(f"{running.base_url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.2)
        yield running


def _wait_for_job(server: ServerProcess, job_id: str) -> None:
    """`.../result` follows a finished job in the docs (after `events`, or 'once done'); wait like a reader."""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while httpx.get(f"{server.base_url}/v1/jobs/{job_id}", timeout=10).json()["status"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        time.sleep(0.2)


def _error_statuses(server: ServerProcess, since: int) -> list[tuple[object, object]]:
    time.sleep(0.3)  # the access log line is written after the response
    return [
        (entry.get("route"), entry.get("status"))
        for entry in server.json_logs()[since:]
        if isinstance(entry.get("status"), int) and entry["status"] >= 400  # type: ignore[operator]
    ]


@pytest.mark.parametrize("document", [path.name for path in DOCUMENTS])
def test_documented_commands_run(document: str, server: ServerProcess, workdir: Path) -> None:
    env = {
        **{name: value for name, value in os.environ.items() if "proxy" not in name.lower()},
        "OMP_THREAD_LIMIT": "1",
        "OCR_WORKERS": "1",
        "OCR_DATA_DIR": str(workdir / "cli-data"),
    }
    job_id: str | None = None
    ran = 0
    for command in (c for c in ALL_COMMANDS if c.source == document):
        if reason_not_run(command) is not None:
            continue
        script = "\n".join(strip_comment(line) for line in command.text.splitlines())
        script = LOCAL_ADDRESS.sub(f"127.0.0.1:{server.port}", script)
        if PLACEHOLDER.search(script):
            assert job_id is not None, f"{command}: no job was submitted before it"
            if "/result" in script:
                _wait_for_job(server, job_id)
            script = PLACEHOLDER.sub(job_id, script)
        outputs = re.findall(r" -o (\S+)", command.key)
        for written in outputs:  # not left over from an earlier command
            shutil.rmtree(workdir / written, ignore_errors=True)
            (workdir / written).unlink(missing_ok=True)
        logged = len(server.json_logs())
        completed = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        output = completed.stdout.decode(errors="replace")
        assert completed.returncode == 0, f"{command}\nexit {completed.returncode}\n{completed.stderr.decode()[-2000:]}"
        expected = EXPECTED_ERRORS.get(command.key)
        errors = [error for error in _error_statuses(server, logged) if error[1] != expected]
        assert not errors, f"{command}\nthe service answered {errors}:\n{output[-2000:]}"
        if "curl" in command.key and " -o " not in command.key and "/v1/ocr" in command.key:
            assert "quick" in output.lower(), f"{command}: no recognised text in\n{output[-2000:]}"
        for written in outputs:  # what -o names exists and holds something
            target = workdir / written
            files = list(target.iterdir()) if written.endswith("/") else [target]
            assert files and all(path.stat().st_size > 0 for path in files), f"{command}: nothing in {written}"
        submitted = LOCATION.search(output)
        if submitted:
            job_id = submitted.group(1)
        ran += 1
    if document in ("README.md", "api.md", "jobs.md"):
        assert ran, f"no command of {document} ran"
