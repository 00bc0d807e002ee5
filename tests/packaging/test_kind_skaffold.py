"""kind-config.yaml and skaffold.yaml: the images skaffold builds are the Dockerfile's targets
under the one name scheme, the chart values it deploys render valid objects, and the port
kind maps reaches the sample's pods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from catalyst_operator.constants import PORT_NAME
from catalyst_operator.labels import selector_labels
from packaging_support import (
    CHART_DIR,
    REPO,
    kinds,
    load_yaml_file,
    merged_values,
    one,
    parse_dockerfile,
    render,
    validate_object,
)

from ocr_service.contract import DEFAULT_IMAGE

SKAFFOLD = REPO / "skaffold.yaml"
KIND_CONFIG = REPO / "kind-config.yaml"


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml_file(SKAFFOLD)
    return data


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def profile(skaffold: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in skaffold["profiles"] if p["name"] == name]
    assert len(found) == 1, name
    return found[0]


def added_values_file(prof: dict[str, Any]) -> str:
    (patch,) = [p for p in prof["patches"] if p["path"] == "/deploy/helm/releases/0/valuesFiles/-"]
    return str(patch["value"])


def test_artifacts_are_dockerfile_targets_under_the_one_image_scheme(skaffold: dict[str, Any]) -> None:
    stages = parse_dockerfile(REPO / "Dockerfile").stages
    for build in (skaffold["build"], profile(skaffold, "prod")["build"]):
        artifacts = build["artifacts"]
        assert [a["image"] for a in artifacts] == [DEFAULT_IMAGE, f"{DEFAULT_IMAGE}-operator"]
        assert [a["docker"]["target"] for a in artifacts] == ["production", "operator"]
        for artifact in artifacts:
            assert artifact["docker"]["dockerfile"] == "Dockerfile" and artifact["docker"]["target"] in stages
    dev_patch = profile(skaffold, "dev")["patches"][0]
    assert dev_patch == {"op": "replace", "path": "/build/artifacts/0/docker/target", "value": "development"}
    assert "development" in stages


def test_helm_release_feeds_the_built_images_to_the_chart(skaffold: dict[str, Any], chart: helm.Chart) -> None:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"]).resolve() == CHART_DIR
    templates = release["setValueTemplates"]
    # Positional variables: IMAGE_* is the first artifact (the service), IMAGE_*2 the second (the operator).
    assert templates["serviceImage.repository"] == "{{.IMAGE_REPO}}"
    assert templates["serviceImage.tag"] == "{{.IMAGE_TAG}}@{{.IMAGE_DIGEST}}"
    assert templates["image.repository"] == "{{.IMAGE_REPO2}}"
    assert templates["image.tag"] == "{{.IMAGE_TAG2}}@{{.IMAGE_DIGEST2}}"
    for key in templates:
        section, field = key.split(".")
        assert field in chart.values[section], f"{key} is not a chart value"


@pytest.mark.parametrize("profile_name", [None, "dev", "prod"])
def test_every_profile_renders_valid_objects(
    skaffold: dict[str, Any], chart: helm.Chart, profile_name: str | None
) -> None:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    files = list(release["valuesFiles"])
    if profile_name:
        files.append(added_values_file(profile(skaffold, profile_name)))
    for name in files:
        assert (REPO / name).is_file(), name
    values = merged_values(files)
    chart.validate_schema(values)
    objects, _ = render(chart, values)
    assert "OcrDeployment" in kinds(objects), "skaffold deploys a sample OcrDeployment"
    for obj in objects:
        validate_object(obj)


def test_port_forward_reaches_the_samples_service(skaffold: dict[str, Any]) -> None:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    values = merged_values(release["valuesFiles"])
    (forward,) = skaffold["portForward"]
    assert forward["resourceType"] == "service"
    assert forward["resourceName"] == values["sample"]["name"], "the operator names the Service after the CR"
    assert forward["namespace"] == release["namespace"]
    crd_default_port = 80
    assert forward["port"] == values["sample"]["spec"].get("service", {}).get("port", crd_default_port)


def test_kind_maps_the_samples_node_port_to_the_host(skaffold: dict[str, Any], chart: helm.Chart) -> None:
    kind = load_yaml_file(KIND_CONFIG)
    assert kind["kind"] == "Cluster" and kind["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = kind["nodes"]
    (mapping,) = node["extraPortMappings"]
    (release,) = skaffold["deploy"]["helm"]["releases"]
    objects, _ = render(chart, merged_values(release["valuesFiles"]))
    node_port_service = next(o for o in objects if o["kind"] == "Service" and o["spec"].get("type") == "NodePort")
    (port,) = node_port_service["spec"]["ports"]
    assert port["nodePort"] == mapping["containerPort"]
    assert mapping["listenAddress"] == "127.0.0.1" and mapping["hostPort"] == 8080
    # The extra Service selects exactly the pods the operator labels for this sample.
    sample = one(objects, "OcrDeployment")
    assert node_port_service["spec"]["selector"] == selector_labels(sample["metadata"]["name"])
    assert port["targetPort"] == PORT_NAME
    assert node_port_service["metadata"]["namespace"] == sample["metadata"]["namespace"]


def test_prod_profile_pushes_and_publishes_no_node_port(skaffold: dict[str, Any], chart: helm.Chart) -> None:
    prod = profile(skaffold, "prod")
    assert prod["build"]["local"]["push"] is True
    (release,) = skaffold["deploy"]["helm"]["releases"]
    objects, _ = render(chart, merged_values([*release["valuesFiles"], added_values_file(prod)]))
    assert not [o for o in objects if o["kind"] == "Service" and o["spec"].get("type") == "NodePort"]
    sample = one(objects, "OcrDeployment")
    assert sample["spec"]["replicas"] == 2
    assert sample["spec"]["database"]["urlSecretRef"]["name"], "two pods share jobs only through PostgreSQL"
    assert skaffold["build"]["local"]["push"] is False, "the default (kind) build loads images locally"
