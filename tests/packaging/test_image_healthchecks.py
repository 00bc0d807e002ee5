"""The health checks the Dockerfile and docker-compose.yml declare, run for real against the
service started the way the image starts it (its ENTRYPOINT/CMD and ENV, on a free loopback
port): they must pass when the service is ready and fail when nothing answers."""

from __future__ import annotations

import json
import shlex
import subprocess
import urllib.request
from pathlib import Path

import pytest
from packaging_support import BIN, REPO, load_yaml_file, parse_dockerfile
from suite_support import free_port

from ocr_service.contract import HTTP_PORT, READINESS_PATH, EnvVar

pytestmark = pytest.mark.xdist_group("packaging-service")


def run_check(command: list[str], env: dict[str, str]) -> int:
    """Run a health check command like Docker does (exec form), with Docker's time limit."""
    assert command[0] == "python", "no curl in the slim image"
    return subprocess.run([str(BIN / "python"), *command[1:]], env=env, timeout=10, check=False).returncode


def test_dockerfile_healthcheck_passes_on_a_ready_service(service: int, image_env: dict[str, str]) -> None:
    (healthcheck,) = parse_dockerfile(REPO / "Dockerfile").stages["production"].all("HEALTHCHECK")
    command = json.loads(healthcheck.args.split(" CMD ", 1)[1])
    assert run_check(command, image_env) == 0
    # Nothing listening: the check fails, so Docker reports the container unhealthy.
    assert run_check(command, {**image_env, EnvVar.PORT: str(free_port())}) != 0


def test_compose_healthcheck_passes_on_a_ready_service(service: int, image_env: dict[str, str]) -> None:
    check = load_yaml_file(REPO / "docker-compose.yml")["services"]["ocr"]["healthcheck"]["test"]
    assert check[0] == "CMD"
    # compose pins OCR_PORT to the contract's port; here the service runs on a free one.
    command = [part.replace(f"127.0.0.1:{HTTP_PORT}/", f"127.0.0.1:{service}/") for part in check[1:]]
    assert command != check[1:], "the check targets the pinned port"
    assert run_check(command, image_env) == 0
    dead = [part.replace(f"127.0.0.1:{service}/", f"127.0.0.1:{free_port()}/") for part in command]
    assert run_check(dead, image_env) != 0


def test_readiness_checks_the_languages_the_image_installs(service: int, image_env: dict[str, str]) -> None:
    """The build argument's space-separated list is also the service's OCR_LANGUAGES, and it parses."""
    assert image_env[EnvVar.LANGUAGES] == "eng deu fra"
    with urllib.request.urlopen(f"http://127.0.0.1:{service}{READINESS_PATH}", timeout=5) as response:
        readiness = json.loads(response.read())
    assert readiness["checks"]["languages"]["ok"] is True
    with urllib.request.urlopen(f"http://127.0.0.1:{service}/v1/languages", timeout=5) as response:
        installed = response.read().decode()
    for language in shlex.split(image_env[EnvVar.LANGUAGES]):
        assert f'"{language}"' in installed


def test_the_image_serves_ocr(service: int, tmp_path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1400, 220), 255)
    ImageDraw.Draw(image).text((40, 60), "Hello from Catalyst OCR", fill=0, font=ImageFont.load_default(size=72))
    path = tmp_path / "scan.png"
    image.save(path)
    request = urllib.request.Request(
        f"http://127.0.0.1:{service}/v1/ocr?format=text",
        data=path.read_bytes(),
        headers={"Content-Type": "image/png"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.read().decode().strip() == "Hello from Catalyst OCR"
