"""The samples in manifests/samples/ are what users apply first: they must be admitted as written.

Each OcrDeployment passes our CRD (schema, defaults, CEL), parses, and builds children that the
Kubernetes schemas accept; each other object passes the Kubernetes schemas; every Secret a sample's
OcrDeployment references is in the same file with the referenced key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from catalyst_operator import constants
from catalyst_operator.builders import BuildContext, build_children
from catalyst_operator.spec import parse_spec, referenced_secrets
from test_crd_tools import SAMPLES_DIR, admit

SAMPLES = sorted(SAMPLES_DIR.glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_both_samples_exist() -> None:
    assert {path.name for path in SAMPLES} >= {"basic.yaml", "full.yaml"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_is_admitted_and_builds_valid_children(path: Path) -> None:
    docs = documents(path)
    resources = [doc for doc in docs if doc["kind"] == constants.KIND]
    assert len(resources) == 1
    for doc in docs:
        if doc["kind"] != constants.KIND:
            kubernetes_validate.validate(doc, "1.31", strict=True)
    resource = resources[0]
    assert resource["apiVersion"] == constants.API_VERSION
    defaulted, errors = admit(resource)
    assert errors == []
    # What the API server would hand the operator: defaults applied, a namespace and a uid assigned.
    defaulted["metadata"].setdefault("namespace", "default")
    defaulted["metadata"]["uid"] = "0b0e7e0e-1111-2222-3333-444455556666"
    spec = parse_spec(defaulted)
    ctx = BuildContext(
        default_image="ghcr.io/catalyst-ocr/catalyst-ocr:0.1.0", monitoring_available=True, secret_hash="0" * 64
    )
    children = build_children(defaulted, spec, ctx)
    for child in children:
        if child["apiVersion"] != constants.MONITORING_API_VERSION:
            kubernetes_validate.validate(child, "1.31", strict=True)


def test_full_sample_references_only_secrets_it_ships() -> None:
    docs = documents(SAMPLES_DIR / "full.yaml")
    (resource,) = (doc for doc in docs if doc["kind"] == constants.KIND)
    resource["metadata"]["uid"] = "u"
    secrets = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Secret"}
    refs = referenced_secrets(parse_spec(resource))
    assert len(refs) == 3
    for ref in refs:
        secret = secrets[ref.name]
        assert secret["metadata"]["namespace"] == resource["metadata"]["namespace"]
        assert ref.key in secret["stringData"]
        assert "example" in secret["stringData"][ref.key], "sample Secrets hold clearly fake values"


def test_full_sample_exercises_every_optional_child() -> None:
    docs = documents(SAMPLES_DIR / "full.yaml")
    (resource,) = (doc for doc in docs if doc["kind"] == constants.KIND)
    resource["metadata"]["uid"] = "u"
    ctx = BuildContext(default_image="unused:1", monitoring_available=True, secret_hash="h", keda_available=True)
    kinds = [child["kind"] for child in build_children(resource, parse_spec(resource), ctx)]
    assert kinds == [
        "ConfigMap",
        "Service",
        "Deployment",
        "Deployment",  # the job workers
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PodMonitor",  # the job workers
        "PrometheusRule",
        "TriggerAuthentication",
        "ScaledObject",
    ]
