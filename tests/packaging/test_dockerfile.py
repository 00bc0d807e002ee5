"""The Dockerfile: hadolint-clean, the stages the deployment files use, and an image that
installs Tesseract the same way the test set-up does."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging_support import BIN, REPO, Dockerfile, parse_dockerfile

from ocr_service.contract import CONTAINER_DATA_DIR, HTTP_PORT, READINESS_PATH, EnvVar

DOCKERFILE = REPO / "Dockerfile"
INSTALL_SCRIPT = "scripts/install-system-deps.sh"
BUILD_TOOLS = ("g++", "gcc", "make", "pkg-config", "libtesseract-dev", "libleptonica-dev", "build-essential")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_every_hadolint_ignore_is_justified() -> None:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if "hadolint ignore" in line:
            # The justification is on the same line after the codes, or on the comment line just above.
            same_line = re.sub(r"#\s*hadolint ignore=[A-Z0-9,]+", "", line).strip(" #-")
            above = lines[number - 2].strip() if number > 1 else ""
            assert same_line or (above.startswith("#") and len(above) > 10), f"line {number}: unjustified ignore"


def test_stages_the_deployment_files_build(dockerfile: Dockerfile) -> None:
    assert {"base", "builder", "production", "development", "operator"} <= set(dockerfile.stages)
    # A plain `docker build .` builds the service image.
    assert list(dockerfile.stages)[-1] == "production"


def test_base_image_is_pinned_python_311_slim_bookworm(dockerfile: Dockerfile) -> None:
    image = dockerfile.global_args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    assert dockerfile.stages["base"].base == "${PYTHON_IMAGE}"
    assert dockerfile.stages["operator"].base == "${PYTHON_IMAGE}"


def test_system_packages_come_from_the_script_the_test_setup_runs(dockerfile: Dockerfile) -> None:
    # The suite's own set-up installs through the same script: test.sh -> bootstrap.sh -> install-system-deps.sh.
    assert "scripts/bootstrap.sh" in (REPO / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert "scripts/install-system-deps.sh" in (REPO / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")

    base = dockerfile.stages["base"]
    copies = [i.args.split() for i in base.all("COPY")]
    assert any(parts[0] == INSTALL_SCRIPT for parts in copies), "base copies the install script"
    installed_to = next(parts[1] for parts in copies if parts[0] == INSTALL_SCRIPT)
    runs = " ".join(i.args for i in base.all("RUN"))
    assert f"{installed_to} --runtime" in runs
    assert "OCR_CLEAN_APT_LISTS=1" in runs
    builder_runs = " ".join(i.args for i in dockerfile.stages["builder"].all("RUN"))
    assert f"{installed_to} --build" in builder_runs
    # Nothing else installs Debian packages behind the script's back.
    for stage in dockerfile.stages.values():
        for run in stage.all("RUN"):
            assert "apt-get" not in run.args, f"{stage.name}: apt-get outside {INSTALL_SCRIPT}"


def test_languages_are_a_build_argument_the_service_also_reads(dockerfile: Dockerfile) -> None:
    base = dockerfile.stages["base"]
    assert any(i.args.startswith(f"{EnvVar.LANGUAGES}=") for i in base.all("ARG"))
    assert base.env()[EnvVar.LANGUAGES] == "${OCR_LANGUAGES}"
    script = (REPO / INSTALL_SCRIPT).read_text(encoding="utf-8")
    assert "OCR_LANGUAGES" in script, "the script reads the same variable"


def test_runtime_mode_of_the_script_installs_no_build_tools() -> None:
    script = (REPO / INSTALL_SCRIPT).read_text(encoding="utf-8")
    runtime = re.search(r"^\s*--runtime\)(.*?);;", script, re.MULTILINE | re.DOTALL)
    assert runtime is not None
    assert not any(tool in runtime.group(1) for tool in BUILD_TOOLS)
    base_packages = re.search(r"^packages=\((.*?)\)", script, re.MULTILINE)
    assert base_packages is not None
    assert not any(tool in base_packages.group(1) for tool in BUILD_TOOLS)


def test_production_stage(dockerfile: Dockerfile) -> None:
    prod = dockerfile.stages["production"]
    # Built on base (runtime packages only), taking just the finished venv from the builder.
    assert prod.base == "base"
    copies_from = [i.args for i in prod.all("COPY") if i.args.startswith("--from=")]
    assert copies_from == ["--from=builder /opt/venv /opt/venv"]
    assert not any(tool in i.args for i in prod.all("RUN") for tool in BUILD_TOOLS)

    env = prod.env()
    assert env["OMP_THREAD_LIMIT"] == "1"
    assert env[EnvVar.DATA_DIR] == CONTAINER_DATA_DIR
    assert env[EnvVar.HOST] == "0.0.0.0", "the service defaults to loopback; a container must listen on every interface"
    assert [i.args for i in prod.all("USER")] == ["1000:1000"]
    assert any("--uid 1000 --gid 1000" in i.args and CONTAINER_DATA_DIR in i.args for i in prod.all("RUN"))
    assert [i.args for i in prod.all("EXPOSE")] == [str(HTTP_PORT)]

    (healthcheck,) = prod.all("HEALTHCHECK")
    command = healthcheck.args.split(" CMD ", 1)[1]
    check = json.loads(command)
    assert check[0] == "python", "no curl in the slim image"
    assert READINESS_PATH in check[-1] and str(HTTP_PORT) in check[-1]

    (entrypoint,) = prod.all("ENTRYPOINT")
    assert entrypoint.exec_form() == ["catalyst-ocr"], "exec form: the service is PID 1 and gets SIGTERM"
    (cmd,) = prod.all("CMD")
    assert cmd.exec_form() == ["serve"]


def test_entrypoints_are_the_projects_console_scripts(dockerfile: Dockerfile) -> None:
    with (REPO / "pyproject.toml").open("rb") as fh:
        scripts = tomllib.load(fh)["project"]["scripts"]
    assert dockerfile.stages["production"].all("ENTRYPOINT")[0].exec_form() == ["catalyst-ocr"]
    assert dockerfile.stages["operator"].all("ENTRYPOINT")[0].exec_form() == ["catalyst-ocr-operator"]
    assert {"catalyst-ocr", "catalyst-ocr-operator"} <= set(scripts)


def test_builder_installs_the_pinned_service_with_tesserocr_from_source(dockerfile: Dockerfile) -> None:
    runs = " ".join(i.args for i in dockerfile.stages["builder"].all("RUN"))
    assert '-c requirements/lock.txt ".[tesserocr]"' in runs
    lock = (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8")
    assert "--no-binary tesserocr" in lock, "the lock makes pip build tesserocr against the system libtesseract"


def test_development_stage_reloads_and_has_dev_tools(dockerfile: Dockerfile) -> None:
    dev = dockerfile.stages["development"]
    runs = " ".join(i.args for i in dev.all("RUN"))
    assert '-e ".[tesserocr,dev]"' in runs
    (entrypoint,) = dev.all("ENTRYPOINT")
    command = entrypoint.exec_form()
    assert command is not None and command[0] == "watchfiles" and "catalyst-ocr serve" in command
    assert dev.env()["OMP_THREAD_LIMIT"] == "1"
    assert dev.env()[EnvVar.HOST] == "0.0.0.0"


def test_operator_stage_installs_only_the_operators_dependencies(dockerfile: Dockerfile) -> None:
    op = dockerfile.stages["operator"]
    with (REPO / "pyproject.toml").open("rb") as fh:
        operator_extra = tomllib.load(fh)["project"]["optional-dependencies"]["operator"]
    wanted = {re.split(r"[<>=!~\[ ]", requirement)[0].lower() for requirement in operator_extra}
    runs = " ".join(i.args for i in op.all("RUN"))
    match = re.search(r"-c requirements/lock\.txt ((?:[a-z0-9_.-]+ ?)+)", runs)
    assert match is not None
    assert set(match.group(1).split()) == wanted
    assert "--no-deps ." in runs
    assert "tesseract" not in runs and "opencv" not in runs
    assert [i.args for i in op.all("USER")] == ["1000:1000"]


def test_env_names_the_images_set_are_service_settings(dockerfile: Dockerfile) -> None:
    known = {str(name) for name in EnvVar}
    for stage in dockerfile.stages.values():
        for name in stage.env():
            if name.startswith("OCR_"):
                assert name in known, f"{stage.name}: {name} is not in ocr_service.contract.EnvVar"


def _dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory pattern covers its contents."""
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        prefix_match = path == body or path.startswith(body + "/")
        if fnmatch.fnmatch(path, body) or prefix_match or fnmatch.fnmatch(path, body.replace("**/", "*/")):
            included = negate
    return included


def test_dockerignore_keeps_the_context_small_but_complete(dockerfile: Dockerfile) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources: set[str] = set()
    for stage in dockerfile.stages.values():
        for copy in stage.all("COPY"):
            if copy.args.startswith("--from="):
                continue
            sources.update(part.rstrip("/") for part in copy.args.split()[:-1])
    assert sources, "the Dockerfile copies sources"
    for source in sorted(sources):
        assert (REPO / source).exists(), f"COPY source {source} does not exist"
        assert _dockerignore_allows(source, patterns), f"{source} is excluded by .dockerignore"
    for heavy in (".venv", ".git", "tests", "benchmarks", "docs", "charts", ".env", "ocr_service/__pycache__"):
        assert not _dockerignore_allows(heavy, patterns), f"{heavy} would be sent to the Docker daemon"


def test_healthcheck_port_follows_the_contract() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert f"'{EnvVar.PORT}', '{HTTP_PORT}'" in text


def _lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()  # a pin may carry an environment marker
        if "==" in line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _closure(roots: list[Requirement]) -> set[str]:
    """Every distribution `pip install <roots>` pulls in, from the installed packages' metadata."""
    visited: set[tuple[str, frozenset[str]]] = set()
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in visited:
            continue
        visited.add(key)
        environments = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
        for raw in importlib.metadata.requires(requirement.name) or []:
            child = Requirement(raw)
            if child.marker is None or any(child.marker.evaluate(env) for env in environments):
                pending.append(child)
    return {name for name, _ in visited}


@pytest.mark.parametrize(
    ("image", "roots"),
    [
        ("production", ["catalyst-ocr[tesserocr]"]),
        ("development", ["catalyst-ocr[tesserocr,dev]"]),
        ("operator", ["kopf", "kubernetes", "prometheus-client", "pyyaml"]),
    ],
)
def test_everything_an_image_installs_is_pinned_by_the_lock(image: str, roots: list[str]) -> None:
    """The images install with the lock as constraints: every package they pull in must be pinned there."""
    pins = _lock_pins()
    closure = _closure([Requirement(root) for root in roots]) - {"catalyst-ocr"}
    assert len(closure) > len(roots)
    unpinned = sorted(closure - set(pins))
    assert not unpinned, f"{image} image would install unpinned {unpinned}"
    for name in closure:
        assert importlib.metadata.version(name) == pins[name], f"{name}: the venv differs from the lock"


def test_no_syntax_line_so_buildkit_needs_no_registry() -> None:
    """`# syntax=` makes BuildKit pull a frontend image first, which fails where no registry answers."""
    first_lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()[:5]
    assert not any(re.match(r"#\s*syntax\s*=", line, re.IGNORECASE) for line in first_lines)


def test_every_pip_install_trusts_the_optional_extra_ca_secret_without_keeping_it(dockerfile: Dockerfile) -> None:
    pip_runs = [
        run.args for stage in dockerfile.stages.values() for run in stage.all("RUN") if "pip install" in run.args
    ]
    assert len(pip_runs) == 3, "builder, development and operator install with pip"
    for run in pip_runs:
        assert run.startswith("--mount=type=secret,id=extra-ca "), run
        assert "export PIP_CERT=/tmp/ca.pem" in run and "/tmp/ca.pem" in run.rsplit("rm ", 1)[-1], run
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "update-ca-certificates" not in text and "ARG EXTRA_CA" not in text, "no image bakes the extra CA in"
    assert "--secret id=extra-ca" in text, "the header documents the build input"
    assert "--secret id=extra-ca" in (REPO / "scripts" / "build-images.sh").read_text(encoding="utf-8")


def test_operator_stage_has_a_passwd_entry_for_its_uid(dockerfile: Dockerfile) -> None:
    op = dockerfile.stages["operator"]
    assert any("useradd --uid 1000 --gid 1000" in run.args for run in op.all("RUN"))
    assert [i.args for i in op.all("USER")] == ["1000:1000"]
