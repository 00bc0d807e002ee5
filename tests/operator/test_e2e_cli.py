"""End to end: the `catalyst-ocr-operator` process, as installed, against the emulated API server.

It finds the cluster through KUBECONFIG, takes kopf's flags through the command line, serves
kopf's liveness endpoint and its own metrics on loopback ports, reconciles, and stops on SIGTERM.
It runs cluster-wide (`--all-namespaces`, as the shipped Deployment does): with `--namespace`,
kopf first lists namespaces, which kmock cannot answer (gap 5 of the kmock notes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from catalyst_operator import metrics
from catalyst_operator.resources import DEPLOYMENTS, SECRETS
from catalyst_operator.settings import ENV_VARS
from catalyst_operator.testing import eventually
from suite_support import free_port

pytestmark = pytest.mark.timeout(120)  # each test has its own emulated cluster and operator: no xdist group


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "tester", "user": {"token": "e2e-token"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
                "current-context": "kmock",
            }
        )
    )
    return path


@dataclass
class RunningOperator:
    process: asyncio.subprocess.Process
    output: str = ""
    """Everything the process printed (stdout and stderr), once it has stopped."""


@contextlib.asynccontextmanager
async def operator_process(env: dict[str, str], *args: str) -> AsyncIterator[RunningOperator]:
    """`python -m catalyst_operator run *args`, stopped with SIGTERM (SIGKILL after 30 s) on exit.

    Its log is printed at the end, so pytest shows it when the test failed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "catalyst_operator", "run", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    running = RunningOperator(process)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        except TimeoutError:
            process.kill()
            output, _ = await process.communicate()
        running.output = output.decode(errors="replace")
        print(running.output[-8000:])


SECRET_VALUE = "postgresql://ocr:S3cr3t-Never-Logged@db/ocr"


async def test_cli_runs_the_operator_from_kubeconfig_with_liveness_and_metrics(k8s, cluster, tmp_path):
    metrics_port, liveness_port = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig(tmp_path / "config", str(cluster.url).rstrip("/"))),
        "CATALYST_OPERATOR_DEFAULT_IMAGE": "registry.example/ocr:cli",
        "CATALYST_OPERATOR_METRICS_ADDRESS": "127.0.0.1",
        "KUBERNETES_SERVICE_HOST": "",  # never mistake the test runner for a pod
    }
    async with operator_process(
        env, "--metrics-port", str(metrics_port), "--standalone", "--all-namespaces",
        "--liveness", f"http://127.0.0.1:{liveness_port}/healthz", "--debug",
    ) as running:  # fmt: skip
        encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
        await k8s.create(
            SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"url": encoded}}
        )
        await k8s.create_cr("cli", {"database": {"urlSecretRef": {"name": "db", "key": "url"}}})
        deployment = await eventually(lambda: k8s.stored(DEPLOYMENTS, "cli"), within=30)
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/ocr:cli"
        assert any(
            r.headers.get("Authorization") == "Bearer e2e-token" for r in k8s.requests() if r.method == "PATCH"
        ), "the operator's writes must carry the kubeconfig's credentials"
        async with httpx.AsyncClient(timeout=5) as client:
            liveness = await client.get(f"http://127.0.0.1:{liveness_port}/healthz")
            assert liveness.status_code == 200
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert 'catalyst_operator_children_applied_total{action="created",kind="Deployment"} 1.0' in metrics
        assert "catalyst_operator_reconcile_duration_seconds_count" in metrics
    assert running.process.returncode == 0, running.output[-3000:]
    log = running.output
    assert f"reconciling {k8s.namespace}/cli" in log  # our handler logged its work (--debug)
    assert SECRET_VALUE not in log and encoded not in log  # never a Secret's value, not even encoded


CONSOLE_SCRIPT = Path(sys.executable).parent / "catalyst-ocr-operator"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([sys.executable, "-m", "catalyst_operator"], id="python-m"),
        pytest.param(
            [str(CONSOLE_SCRIPT)],
            id="console-script",
            marks=pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="not installed (pip install -e .)"),
        ),
    ],
)
async def test_cli_help_lists_the_settings_and_kopfs_flags(command):
    process = await asyncio.create_subprocess_exec(*command, "--help", stdout=asyncio.subprocess.PIPE)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    text = output.decode()
    assert process.returncode == 0
    assert "CATALYST_OPERATOR_METRICS_PORT" in text
    for flag in ("--standalone", "--namespace", "--all-namespaces", "--liveness", "--verbose"):
        assert flag in text


async def test_cli_refuses_a_bad_setting_before_connecting_anywhere(tmp_path):
    env = {**os.environ, "CATALYST_OPERATOR_METRICS_PORT": "eighty", "KUBECONFIG": str(tmp_path / "absent")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "catalyst_operator", "run", "--standalone", "-A",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, errors = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "CATALYST_OPERATOR_METRICS_PORT='eighty' is not an integer" in errors.decode()


def test_operations_guide_documents_every_setting_and_metric_and_names_only_existing_files():
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operator-operations.md").read_text()
    documented = set(re.findall(r"`(CATALYST_OPERATOR_[A-Z_]+)`", guide))
    assert documented == set(ENV_VARS)
    exported = {family.name + ("_total" if family.type == "counter" else "") for family in metrics.REGISTRY.collect()}
    assert set(re.findall(r"`(catalyst_operator_[a-z_]+)`", guide)) == exported
    repo = Path(__file__).resolve().parents[2]
    paths = set(re.findall(r"(?<![\w/.-])((?:manifests|charts|operator|tests|benchmarks|docs)/[\w./-]*\w/?)", guide))
    assert paths, "the guide names files"
    assert [path for path in sorted(paths) if not (repo / path).exists()] == []


async def test_cli_without_credentials_stops_with_a_clear_message(tmp_path):
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "absent"), "KUBERNETES_SERVICE_HOST": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "catalyst_operator", "run", "--standalone", "-A",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode != 0
    assert f"no cluster credentials: not running in a pod, and {tmp_path / 'absent'}" in output.decode()
