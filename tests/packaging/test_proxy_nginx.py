"""The compose proxy's nginx configuration, run for real in front of the service.

The template is rendered the way the nginx image does it (envsubst of the variables compose
sets), with only the listen address and the upstream host pointed at loopback. Needs an nginx
binary (`apt-get install nginx-light`, or NGINX_BIN=/path/to/nginx); the static checks of the
same file in test_compose.py run everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging_support import REPO, interpolation_default, load_yaml_file, missing_tool
from suite_support import free_port

from ocr_service.contract import HTTP_PORT, METRICS_PATH, READINESS_PATH, EnvVar

pytestmark = pytest.mark.xdist_group("packaging-service")
TEMPLATE = REPO / "deploy" / "nginx" / "templates" / "default.conf.template"
START_TIMEOUT_SECONDS = 15
TEST_BODY_LIMIT = 200_000
"""A smaller OCR_MAX_UPLOAD_BYTES than the default, as a user could set in .env, to keep the test light."""


def nginx_binary() -> str | None:
    for candidate in (os.environ.get("NGINX_BIN"), shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def render(upstream_port: int, listen_port: int) -> str:
    """envsubst of the template with compose's values (defaults, plus the test's smaller limits)."""
    environment: dict[str, Any] = load_yaml_file(REPO / "docker-compose.yml")["services"]["proxy"]["environment"]
    values = {name: interpolation_default(str(value), name) for name, value in environment.items()}
    values.update({EnvVar.MAX_UPLOAD_BYTES: str(TEST_BODY_LIMIT), "CATALYST_PROXY_RATE": "2r/s"})
    values["CATALYST_PROXY_BURST"] = "3"
    text = TEMPLATE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text.replace("$ocr", ""), "every template variable has a value"
    for old, new in (
        ("listen 8080;", f"listen 127.0.0.1:{listen_port};"),
        (f"http://ocr:{HTTP_PORT};", f"http://127.0.0.1:{upstream_port};"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def nginx() -> str:
    binary = nginx_binary()
    if binary is None:
        missing_tool("no nginx binary (apt-get install nginx-light, or set NGINX_BIN)")
    return binary


def start_proxy(binary: str, directory: Path, upstream_port: int) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    for sub in ("conf.d", "tmp", "logs"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / sub).chmod(0o777)
    (directory / "conf.d" / "default.conf").write_text(render(upstream_port, port), encoding="utf-8")
    temp = directory / "tmp"
    (directory / "nginx.conf").write_text(
        f"""
        worker_processes 1;
        daemon off;
        error_log {directory}/logs/error.log warn;
        pid {directory}/nginx.pid;
        events {{ worker_connections 64; }}
        http {{
            access_log off;
            client_body_temp_path {temp}; proxy_temp_path {temp};
            fastcgi_temp_path {temp}; uwsgi_temp_path {temp}; scgi_temp_path {temp};
            include {directory}/conf.d/*.conf;
        }}
        """,
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", str(directory / "logs/error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"nginx did not start: {process.communicate(timeout=10)[1]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def proxy(nginx: str, service: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = start_proxy(nginx, tmp_path_factory.mktemp("nginx"), service)
    yield port
    stop(process)


Response = tuple[int, dict[str, str], bytes]
"""Status, headers (lower-case names) and body."""


def call(port: int, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers=headers or {}, method="POST" if body else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def page_png() -> bytes:
    import io

    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1400, 220), 255)
    ImageDraw.Draw(image).text((40, 60), "Hello from Catalyst OCR", fill=0, font=ImageFont.load_default(size=72))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_ocr_passes_through_and_request_ids_are_kept(proxy: int) -> None:
    status, headers, body = call(proxy, "/v1/ocr?format=text", body=page_png(), headers={"Content-Type": "image/png"})
    assert status == 200 and body.decode().strip() == "Hello from Catalyst OCR"
    assert len(headers["x-request-id"]) == 32, "nginx gives a request without an id its $request_id"
    _, headers, _ = call(proxy, READINESS_PATH, headers={"X-Request-ID": "client-chosen-id"})
    assert headers["x-request-id"] == "client-chosen-id"


def test_oversized_body_is_refused_with_the_services_problem(proxy: int) -> None:
    status, headers, body = call(
        proxy, "/v1/ocr", body=b"\0" * (TEST_BODY_LIMIT + 1), headers={"Content-Type": "image/png"}
    )
    assert status == 413 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"].endswith("/payload-too-large")


def test_metrics_are_not_exposed(proxy: int) -> None:
    assert call(proxy, METRICS_PATH)[0] == 404


def test_bursts_are_rate_limited_but_probes_are_not(proxy: int) -> None:
    time.sleep(2.0)  # at 2 requests/s the burst allowance (3) used by earlier tests is back
    responses = [call(proxy, "/v1/languages") for _ in range(12)]
    statuses = [status for status, _, _ in responses]
    assert statuses[:4] == [200] * 4, "the rate plus the burst pass at once (nodelay)"
    assert 429 in statuses, statuses
    _, headers, body = next(response for response in responses if response[0] == 429)
    assert headers["retry-after"] == "1" and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"].endswith("/rate-limited")
    assert {call(proxy, READINESS_PATH)[0] for _ in range(12)} == {200}


def test_a_dead_upstream_is_a_503_problem(nginx: str, tmp_path: Path) -> None:
    process, port = start_proxy(nginx, tmp_path / "nginx", free_port())
    try:
        status, headers, body = call(port, READINESS_PATH)
    finally:
        stop(process)
    assert status == 503 and headers["content-type"] == "application/problem+json"
    assert headers["retry-after"] == "5" and json.loads(body)["type"].endswith("/unavailable")
