"""The operator's Helm chart, through the real Helm library (helm-python-sdk): lint --strict,
render with default and with every feature on, and check what comes out against the Kubernetes
schemas, our CRD, the operator's own permission table and the one image scheme."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from catalyst_operator.resources import NAMESPACED_PERMISSIONS, PERMISSIONS
from catalyst_operator.settings import ENV_VARS
from packaging_support import (
    CHART_DIR,
    CRD_FILE,
    DASHBOARD_FILE,
    NAMESPACE,
    RELEASE,
    REPO,
    kinds,
    load_yaml_documents,
    load_yaml_file,
    one,
    operator_image_repository,
    project_version,
    render,
    validate_object,
)

from ocr_service.contract import DEFAULT_IMAGE

KUBE_VERSIONS = ("v1.27.0", "v1.31.0")
STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by")


def _sample_spec() -> dict[str, Any]:
    """The production-shaped sample's spec: the chart must pass any valid OcrDeployment through."""
    documents = load_yaml_documents((REPO / "manifests" / "samples" / "full.yaml").read_text(encoding="utf-8"))
    spec: dict[str, Any] = next(doc for doc in documents if doc["kind"] == "OcrDeployment")["spec"]
    return spec


FULL_VALUES: dict[str, Any] = {
    "image": {"repository": "registry.example.com/catalyst-ocr/catalyst-ocr-operator", "tag": "0.1.0-rc1"},
    "serviceImage": {"repository": "registry.example.com/catalyst-ocr/catalyst-ocr", "tag": "0.1.0-rc1"},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "fullnameOverride": "ocr-operator",
    "serviceAccount": {"create": True, "name": "ocr-operator-sa", "annotations": {"example.com/role": "operator"}},
    "rbac": {"create": True, "scope": "cluster"},
    "operator": {"extraArgs": ["--verbose"], "env": [{"name": "CATALYST_OPERATOR_RESYNC_SECONDS", "value": "120"}]},
    "liveness": {"port": 9091, "path": "/live"},
    "metrics": {
        "enabled": True,
        "port": 9090,
        "service": {"annotations": {"prometheus.io/scrape": "true"}},
        "serviceMonitor": {"enabled": True, "interval": "1m", "scrapeTimeout": "20s", "labels": {"release": "kps"}},
    },
    "dashboard": {"enabled": True, "labels": {"grafana_dashboard": "1"}, "annotations": {"grafana_folder": "OCR"}},
    "sample": {"enabled": True, "name": "ocr-demo", "spec": _sample_spec()},
    "resources": {"requests": {"cpu": "100m", "memory": "160Mi"}, "limits": {"cpu": 1, "memory": "512Mi"}},
    "podAnnotations": {"example.com/team": "documents"},
    "podLabels": {"team": "documents"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "ops", "operator": "Exists"}]}}
            ]
        }
    },
    "priorityClassName": "system-cluster-critical",
}


BRING_YOUR_OWN: dict[str, Any] = {
    "rbac": {"create": False},
    "serviceAccount": {"create": False, "name": "existing-operator-account"},
    "metrics": {"enabled": False},
}
"""RBAC and ServiceAccount managed elsewhere, no metrics: the smallest install."""
VALUE_VARIANTS = [None, FULL_VALUES, {"rbac": {"scope": "namespace"}}, BRING_YOUR_OWN]
VARIANT_IDS = ["default", "full", "ns", "bring-your-own"]


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def rule_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# --- lint and schema ------------------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_VARIANTS, ids=VARIANT_IDS)
def test_helm_lint_strict_passes(kube_version: str, values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version=kube_version)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["total_charts_linted"] == 1
    assert not problems and not report["errors"], problems or report["errors"]


@pytest.mark.parametrize(
    "values",
    [
        {"rbac": {"scoep": "cluster"}},
        {"imagee": {"repository": "x"}},
        {"metrics": {"serviceMonitor": {"enable": True}}},
        {"rbac": {"scope": "global"}},
        {"image": {"pullPolicy": "Sometimes"}},
        {"sample": {"name": "Not_A_DNS_Name"}},
        {"metrics": {"serviceMonitor": {"interval": "one minute"}}},
    ],
    ids=["nested-typo", "top-level-typo", "deep-typo", "bad-scope", "bad-pull-policy", "bad-name", "bad-duration"],
)
def test_values_schema_rejects_typos_and_bad_values(chart: helm.Chart, values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmError):
        chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    report = helm.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE)
    assert report["errors"] or any(m["severity"] >= 2 for m in report["messages"])


def test_schema_accepts_the_defaults_and_the_full_values(chart: helm.Chart) -> None:
    chart.validate_schema(chart.values)
    chart.validate_schema(FULL_VALUES)


def test_values_yaml_and_the_schema_declare_the_same_keys(chart: helm.Chart) -> None:
    """Every key in values.yaml is in the schema (closed objects), and every key the schema allows
    has a documented default in values.yaml (Helm's own `global` excepted)."""
    schema = chart.schema
    assert schema is not None and schema["additionalProperties"] is False

    def walk(values: dict[str, Any], node: dict[str, Any], where: str) -> None:
        if "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        properties = node.get("properties")
        if properties is None:
            return
        assert node.get("additionalProperties") is False, f"{where or 'values'} is open to typos"
        undocumented = set(properties) - set(values) - {"global"}
        assert not undocumented, f"{where or 'values'}: {sorted(undocumented)} have no default in values.yaml"
        for key, value in values.items():
            assert key in properties, f"{where}.{key} is not in values.schema.json"
            if isinstance(value, dict):
                walk(value, properties[key], f"{where}.{key}")

    walk(chart.values, schema, "")


# --- rendered objects -----------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_VARIANTS, ids=VARIANT_IDS)
def test_every_rendered_object_validates(chart: helm.Chart, values: dict[str, Any] | None) -> None:
    objects, _ = render(chart, values)
    assert objects
    for obj in objects:
        validate_object(obj)


def test_default_install(chart: helm.Chart) -> None:
    objects, _ = render(chart)
    assert kinds(objects) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert all(labels.get(key) for key in STANDARD_LABELS), obj["kind"]
        assert labels["app.kubernetes.io/version"] == project_version()
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE


def test_full_install_renders_every_optional_object(chart: helm.Chart) -> None:
    objects, _ = render(chart, FULL_VALUES)
    optional = ["ConfigMap", "OcrDeployment", "ServiceMonitor"]
    assert kinds(objects) == sorted([*kinds(render(chart)[0]), *optional])


def test_operator_deployment(chart: helm.Chart) -> None:
    deployment = one(render(chart)[0], "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}, "never two operators at once"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"{operator_image_repository()}:{project_version()}"

    liveness_arg = next(arg for arg in container["args"] if arg.startswith("--liveness="))
    match = re.fullmatch(r"--liveness=http://0\.0\.0\.0:(\d+)(/\S*)", liveness_arg)
    assert match, liveness_arg
    probe = container["livenessProbe"]["httpGet"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert probe["path"] == match.group(2) and ports[probe["port"]] == int(match.group(1))
    assert {"--standalone", "--all-namespaces"} <= set(container["args"])

    env = {item["name"]: item for item in container["env"]}
    operator_env = {name for name in env if name.startswith("CATALYST_OPERATOR_")}
    assert operator_env <= set(ENV_VARS), f"unknown operator settings {operator_env - set(ENV_VARS)}"
    assert env["CATALYST_OPERATOR_DEFAULT_IMAGE"]["value"] == f"{DEFAULT_IMAGE}:{project_version()}"
    assert int(env["CATALYST_OPERATOR_METRICS_PORT"]["value"]) == ports["metrics"]

    # Restricted Pod Security Standard.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["serviceAccountName"] == one(render(chart)[0], "ServiceAccount")["metadata"]["name"]


def test_full_values_reach_the_deployment(chart: helm.Chart) -> None:
    objects, _ = render(chart, FULL_VALUES)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/catalyst-ocr/catalyst-ocr-operator:0.1.0-rc1"
    assert "--verbose" in container["args"] and "--liveness=http://0.0.0.0:9091/live" in container["args"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["CATALYST_OPERATOR_DEFAULT_IMAGE"] == "registry.example.com/catalyst-ocr/catalyst-ocr:0.1.0-rc1"
    assert env["CATALYST_OPERATOR_RESYNC_SECONDS"] == "120" and env["CATALYST_OPERATOR_METRICS_PORT"] == "9090"
    assert pod["serviceAccountName"] == "ocr-operator-sa"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_bring_your_own_account_installs_only_the_deployment(chart: helm.Chart) -> None:
    objects, _ = render(chart, BRING_YOUR_OWN)
    assert kinds(objects) == ["Deployment"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "existing-operator-account"


def test_metrics_disabled_means_port_zero_and_no_service(chart: helm.Chart) -> None:
    objects, _ = render(chart, {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}})
    assert "Service" not in kinds(objects) and "ServiceMonitor" not in kinds(objects)
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["CATALYST_OPERATOR_METRICS_PORT"] == "0"


def test_service_monitor_scrapes_the_metrics_service(chart: helm.Chart) -> None:
    objects, _ = render(chart, FULL_VALUES)
    monitor, service = one(objects, "ServiceMonitor"), one(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["interval"] == "1m" and endpoint["scrapeTimeout"] == "20s"
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


# --- RBAC -----------------------------------------------------------------------------------------


def test_rbac_grants_exactly_the_operators_permission_table(chart: helm.Chart) -> None:
    expected = {(p.group, p.resource, verb) for p in PERMISSIONS for verb in p.verbs}
    objects, _ = render(chart)
    role, binding = one(objects, "ClusterRole"), one(objects, "ClusterRoleBinding")
    assert rule_set(role["rules"]) == expected
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    (subject,) = binding["subjects"]
    assert subject == {
        "kind": "ServiceAccount",
        "name": one(objects, "ServiceAccount")["metadata"]["name"],
        "namespace": NAMESPACE,
    }


def test_namespace_scope_uses_a_role_and_watches_only_its_namespace(chart: helm.Chart) -> None:
    objects, _ = render(chart, {"rbac": {"scope": "namespace"}})
    assert "ClusterRole" not in kinds(objects) and "ClusterRoleBinding" not in kinds(objects)
    role, binding = one(objects, "Role"), one(objects, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert rule_set(role["rules"]) == {(p.group, p.resource, verb) for p in NAMESPACED_PERMISSIONS for verb in p.verbs}
    assert rule_set(role["rules"]) < rule_set(one(render(chart)[0], "ClusterRole")["rules"])
    assert binding["roleRef"]["kind"] == "Role"
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert f"--namespace={NAMESPACE}" in container["args"] and "--all-namespaces" not in container["args"]


def test_rbac_matches_the_plain_manifests(chart: helm.Chart) -> None:
    """The chart's ClusterRole equals manifests/operator/'s, and its namespace-scope Role the namespaced one."""
    operator_dir = REPO / "manifests" / "operator"
    roles = [
        doc
        for path in sorted(operator_dir.glob("*.yaml"))
        for doc in load_yaml_documents(path.read_text(encoding="utf-8"))
        if doc["kind"] in ("ClusterRole", "Role")
    ]
    assert sorted(role["kind"] for role in roles) == ["ClusterRole", "Role"], "both install variants grant RBAC"
    chart_rules = {
        "ClusterRole": rule_set(one(render(chart)[0], "ClusterRole")["rules"]),
        "Role": rule_set(one(render(chart, {"rbac": {"scope": "namespace"}})[0], "Role")["rules"]),
    }
    for role in roles:
        assert rule_set(role["rules"]) == chart_rules[role["kind"]], (
            f"{role['kind']} {role['metadata']['name']} differs from the chart"
        )


# --- files shared with the rest of the repository -------------------------------------------------


def test_chart_crd_is_byte_identical_to_the_manifests_crd(chart: helm.Chart) -> None:
    chart_crd = CHART_DIR / "crds" / CRD_FILE.name
    assert chart_crd.read_bytes() == CRD_FILE.read_bytes(), "copy manifests/crds/ into the chart's crds/"
    assert [crd["filename"] for crd in chart.crds] == [f"{chart.name}/crds/{CRD_FILE.name}"], "Helm installs it"
    validate_object(load_yaml_file(chart_crd))


def test_dashboard_configmap_carries_the_shared_dashboard(chart: helm.Chart) -> None:
    configmap = one(render(chart, FULL_VALUES)[0], "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"]["catalyst-ocr.json"] == DASHBOARD_FILE.read_text(encoding="utf-8").rstrip("\n")
    assert json.loads(configmap["data"]["catalyst-ocr.json"])["uid"] == "catalyst-ocr"


def test_sample_ocrdeployment_comes_from_values(chart: helm.Chart) -> None:
    assert "OcrDeployment" not in kinds(render(chart)[0]), "no sample unless asked for"
    objects, _ = render(chart, FULL_VALUES)
    sample = one(objects, "OcrDeployment")
    assert sample["metadata"] == {
        "name": "ocr-demo",
        "namespace": NAMESPACE,
        "labels": sample["metadata"]["labels"],
    }
    assert sample["spec"] == _sample_spec()
    defaults, _ = render(chart, {"sample": {"enabled": True}})
    assert one(defaults, "OcrDeployment")["spec"] == {}, "the CRD's defaults apply"


def test_versions_and_images_follow_the_one_scheme(chart: helm.Chart) -> None:
    version = project_version()
    assert chart.metadata["apiVersion"] == "v2"
    assert chart.version == version and chart.metadata["appVersion"] == version
    assert chart.values["image"]["repository"] == operator_image_repository()
    assert chart.values["serviceImage"]["repository"] == DEFAULT_IMAGE
    assert chart.values["image"]["tag"] == chart.values["serviceImage"]["tag"] == ""


def test_notes_tell_the_user_what_to_do_next(chart: helm.Chart) -> None:
    _, notes = render(chart)
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{RELEASE}" in notes
    assert (
        "kind: OcrDeployment" in notes and "kubectl -n catalyst-ocr-system wait --for=condition=Ready ocrd/ocr" in notes
    )
    assert "port-forward service/ocr 8000:80" in notes and "curl -F file=@scan.png localhost:8000/v1/ocr" in notes
    _, notes = render(chart, FULL_VALUES)
    assert "ocrd/ocr-demo" in notes and "port-forward service/ocr-demo 8000:80" in notes
