"""Fixtures of the packaging tests that start real processes: the service as the image runs it.

Tests using `service` belong to the xdist group "packaging-service", so one worker starts it once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from packaging_support import BIN, REPO, parse_dockerfile
from suite_support import free_port

from ocr_service.contract import LIVENESS_PATH, EnvVar

START_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="session")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The production image's environment (its ENV lines, build-arg defaults substituted), on loopback."""
    dockerfile = parse_dockerfile(REPO / "Dockerfile")
    stages = dockerfile.stages
    build_args = {
        instruction.args.partition("=")[0]: instruction.args.partition("=")[2].strip('"')
        for instruction in stages["base"].all("ARG")
    }
    env = {**stages["base"].env(), **stages["production"].env()}
    env = {key: value.replace("${OCR_LANGUAGES}", build_args["OCR_LANGUAGES"]) for key, value in env.items()}
    env.pop("PATH")
    data_dir = tmp_path_factory.mktemp("data")
    env.update({EnvVar.DATA_DIR: str(data_dir), EnvVar.HOST: "127.0.0.1", EnvVar.PORT: str(free_port())})
    env.update({EnvVar.WORKERS: "1", EnvVar.LOG_LEVEL: "warning"})
    return {**os.environ, **{str(key): value for key, value in env.items()}}


@pytest.fixture(scope="session")
def service(image_env: dict[str, str]) -> Iterator[int]:
    stages = parse_dockerfile(REPO / "Dockerfile").stages
    entrypoint = stages["production"].all("ENTRYPOINT")[0].exec_form() or []
    command = stages["production"].all("CMD")[0].exec_form() or []
    process = subprocess.Popen(
        [str(BIN / entrypoint[0]), *entrypoint[1:], *command],
        env=image_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = int(image_env[EnvVar.PORT])
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{LIVENESS_PATH}", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"the service did not start: {process.communicate(timeout=10)[1][-2000:]}")
                time.sleep(0.2)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
