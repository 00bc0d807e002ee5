"""One set of names across every way to deploy Catalyst OCR.

The image scheme (`contract.DEFAULT_IMAGE[-operator]:<package version>`), the port, the probe
paths and the environment variable names are defined once, in ocr_service/contract.py and
settings.py. Every deployment file and the operator's Deployment builder must use exactly
those: a renamed setting or a bumped version that misses one file fails here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from catalyst_operator.builders import BuildContext, build_children
from catalyst_operator.constants import PORT_NAME
from catalyst_operator.settings import ENV_VARS, OperatorSettings, package_version
from catalyst_operator.spec import parse_spec
from packaging_support import (
    CHART_DIR,
    REPO,
    load_yaml_documents,
    load_yaml_file,
    merged_values,
    project_version,
    render,
    validate_object,
)

from ocr_service.contract import DEFAULT_IMAGE, HTTP_PORT, LIVENESS_PATH, METRICS_PATH, READINESS_PATH, EnvVar
from ocr_service.settings import SETTINGS_TABLE

IMAGE_REFERENCE = re.compile(r"ghcr\.io/catalyst-ocr/[A-Za-z0-9._/-]*[A-Za-z0-9](?::[A-Za-z0-9._${}:-]+)?")
SERVICE_ENV = {str(name) for name in EnvVar}
EXTRA_CONTAINER_ENV = {"OMP_THREAD_LIMIT"}
"""Not a service setting, but read by Tesseract (one OpenMP thread per recognition)."""
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))


def tracked_text_files() -> list[Path]:
    """Files git knows about (committed or staged), minus the tests that spell bad examples on purpose."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    files = []
    for name in listed:
        path = REPO / name
        if name.startswith("tests/") or not path.is_file() or path.suffix in (".png", ".jpg", ".tif", ".pdf", ".gz"):
            continue
        files.append(path)
    return files


def test_every_image_reference_follows_the_one_scheme() -> None:
    version = project_version()
    allowed_repositories = {DEFAULT_IMAGE, f"{DEFAULT_IMAGE}-operator"}
    seen: dict[str, list[str]] = {}
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for reference in IMAGE_REFERENCE.findall(text):
            seen.setdefault(reference, []).append(str(path.relative_to(REPO)))
    assert seen, "the repository names its images"
    for reference, where in sorted(seen.items()):
        repository, _, tag = reference.partition(":")
        assert repository in allowed_repositories, f"{reference} in {where}"
        if tag and not tag.startswith("$"):
            assert tag in (version, f"{version}-dev"), f"{reference} in {where}: the tag is the package version"


def test_versions_agree() -> None:
    version = project_version()
    chart = load_yaml_file(CHART_DIR / "Chart.yaml")
    assert chart["version"] == chart["appVersion"] == version
    assert package_version() == version, "the installed package is the checkout's version (reinstall: bootstrap.sh)"
    assert OperatorSettings.from_env({}).default_image == f"{DEFAULT_IMAGE}:{version}"


def test_env_example_names_only_service_settings() -> None:
    example = REPO / ".env.example"
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example.read_text(encoding="utf-8"), re.MULTILINE)
    assert names
    assert set(names) <= SERVICE_ENV, f"not service settings: {sorted(set(names) - SERVICE_ENV)}"
    assert {spec.env for spec in SETTINGS_TABLE} <= set(names), "compose's env_file passes every setting"


def _sample_crs() -> list[dict[str, Any]]:
    crs = []
    for path in SAMPLES:
        for doc in load_yaml_documents(path.read_text(encoding="utf-8")):
            if doc["kind"] == "OcrDeployment":
                doc.setdefault("metadata", {}).setdefault("namespace", "default")
                doc["metadata"]["uid"] = f"uid-{path.stem}"
                crs.append(doc)
    # The samples the chart creates: its default one, and skaffold's for each profile.
    skaffold_files = ["deploy/skaffold/values-kind.yaml"]
    chart_values = {
        "chart-sample": {"sample": {"enabled": True}},
        "skaffold-dev": merged_values([*skaffold_files, "deploy/skaffold/values-dev.yaml"]),
        "skaffold-prod": merged_values([*skaffold_files, "deploy/skaffold/values-prod.yaml"]),
    }
    with helm.Chart.load(CHART_DIR) as chart:
        for label, values in chart_values.items():
            objects, _ = render(chart, values)
            (cr,) = [obj for obj in objects if obj["kind"] == "OcrDeployment"]
            cr["metadata"]["uid"] = f"uid-{label}"
            crs.append(cr)
    return crs


@pytest.mark.parametrize("cr", _sample_crs(), ids=lambda cr: cr["metadata"]["uid"])
def test_operator_builds_children_with_the_services_names(cr: dict[str, Any]) -> None:
    """The operator's Deployment builder speaks the contract: port, probes, env var names, image."""
    ctx = BuildContext(
        default_image=OperatorSettings.from_env({}).default_image, monitoring_available=True, secret_hash="0"
    )
    built = build_children(cr, parse_spec(cr), ctx)
    children = {
        child["kind"]: child
        for child in built
        if child["metadata"]["name"] in (cr["metadata"]["name"], f"{cr['metadata']['name']}-config")
    }
    deployment = children["Deployment"]  # the API pods; the job workers' Deployment is checked below
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith((f"{DEFAULT_IMAGE}:", "registry.example.com/"))
    # `python -m ocr_service.jobs` serves the same probes and /metrics on the same port as the API pods.
    workers = [c["spec"]["template"]["spec"]["containers"][0] for c in built if c["kind"] == "Deployment"]
    for pod in workers:
        assert {item["name"] for item in pod.get("env", [])} <= SERVICE_ENV | EXTRA_CONTAINER_ENV
        assert pod["ports"] == [{"name": PORT_NAME, "containerPort": HTTP_PORT, "protocol": "TCP"}]
        assert pod["livenessProbe"]["httpGet"] == {"path": LIVENESS_PATH, "port": PORT_NAME}
        assert pod["readinessProbe"]["httpGet"] == {"path": READINESS_PATH, "port": PORT_NAME}
    names = {item["name"] for item in container.get("env", [])}
    assert names <= SERVICE_ENV | EXTRA_CONTAINER_ENV, f"unknown variables {names - SERVICE_ENV - EXTRA_CONTAINER_ENV}"
    assert set(children["ConfigMap"]["data"]) <= SERVICE_ENV
    assert children["Service"]["spec"]["ports"][0]["targetPort"] == PORT_NAME
    if "ServiceMonitor" in children:
        (endpoint,) = children["ServiceMonitor"]["spec"]["endpoints"]
        assert endpoint["port"] == PORT_NAME and endpoint.get("path", METRICS_PATH) == METRICS_PATH
    for child in children.values():
        validate_object(child)


def test_operator_install_manifests_use_the_operator_settings() -> None:
    operator_dir = REPO / "manifests" / "operator"
    deployments = [
        doc
        for path in sorted(operator_dir.glob("*.yaml"))
        for doc in load_yaml_documents(path.read_text(encoding="utf-8"))
        if doc["kind"] == "Deployment"
    ]
    assert deployments
    for deployment in deployments:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        repository, _, tag = container["image"].partition(":")
        assert repository == f"{DEFAULT_IMAGE}-operator" and tag == project_version()
        names = {item["name"] for item in container.get("env", [])}
        operator_names = {name for name in names if name.startswith("CATALYST_OPERATOR_")}
        assert operator_names <= set(ENV_VARS)
        assert not {name for name in names if name.startswith("OCR_")} - SERVICE_ENV


def test_chart_and_manifests_run_the_operator_alike() -> None:
    """Same liveness endpoint and metrics port in the chart's defaults and the plain manifests."""
    operator_dir = REPO / "manifests" / "operator"
    (deployment,) = [
        doc
        for path in sorted(operator_dir.glob("*.yaml"))
        for doc in load_yaml_documents(path.read_text(encoding="utf-8"))
        if doc["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    values = load_yaml_file(CHART_DIR / "values.yaml")
    args = container.get("args", []) + container.get("command", [])
    liveness = next(arg for arg in args if arg.startswith("--liveness="))
    assert liveness.endswith(f":{values['liveness']['port']}{values['liveness']['path']}")
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == values["liveness"]["path"]
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    metrics_port = int(env.get("CATALYST_OPERATOR_METRICS_PORT") or OperatorSettings.from_env({}).metrics_port)
    assert metrics_port == values["metrics"]["port"]


def test_the_deployment_guide_names_only_files_that_exist() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "(docs/deploy.md)" in readme.split("<!-- section:deploy", 1)[1], (
        "the README's deploy section links the guide"
    )
    paths = set(
        re.findall(
            r"(?<![\w/.-])((?:deploy|charts|manifests|scripts|operator|docs)/[\w./-]*\w|"
            r"docker-compose(?:\.dev)?\.yml|kind-config\.yaml|skaffold\.yaml|Dockerfile|\.env\.example)",
            guide,
        )
    )
    assert len(paths) > 10
    missing = sorted(path for path in paths if not (REPO / path).exists() and not (REPO / "docs" / path).exists())
    assert not missing, f"docs/deploy.md names files that do not exist: {missing}"
    for section in ("## 1. Docker Compose", "## 2. kind + skaffold", "## 3. Helm", "## 4. Plain manifests"):
        body = guide.split(section, 1)[1].split("\n## ", 1)[0]
        assert "curl -F file=@scan.png" in body, f"{section} ends in an OCR answer"
