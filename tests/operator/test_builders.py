"""The pure child builders over a matrix of specs, every object checked against its real schema.

Core kinds are validated with kubernetes-validate (the official schemas of Kubernetes 1.31,
strict: unknown fields fail); ServiceMonitor and PrometheusRule with the strict hand-written
schemas in `schemas/` (see its README). Behaviour is asserted on the built dicts themselves.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from catalyst_operator import constants
from catalyst_operator.builders import CHILD_TYPES, BuildContext, build_children, child_name, rule_groups, service_url
from catalyst_operator.builders.deployment import API_KEYS_DIR
from catalyst_operator.builders.monitoring import RULES_JOB_MATCHER
from catalyst_operator.labels import version_label
from catalyst_operator.spec import SpecError, parse_spec, referenced_secrets

from ocr_service import metrics
from ocr_service.contract import (
    CONTAINER_DATA_DIR,
    HTTP_PORT,
    LIVENESS_PATH,
    METRICS_PATH,
    READINESS_PATH,
    SECRET_ENV_VARS,
    EnvVar,
)
from ocr_service.settings import Settings

SCHEMAS = Path(__file__).parent / "schemas"
UID = "0b0e7e0e-1111-2222-3333-444455556666"
CTX = BuildContext(default_image="ghcr.io/catalyst-ocr/catalyst-ocr:0.1.0", monitoring_available=True, secret_hash="s1")

SECRETS = {
    "database": {"urlSecretRef": {"name": "pg", "key": "dsn"}},
    "redis": {"urlSecretRef": {"name": "cache"}},
    "auth": {"apiKeysSecretRef": {"name": "keys"}},
}
PLACEMENT = {
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ocr", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "ocr"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "priorityClassName": "high",
    "imagePullSecrets": [{"name": "registry"}],
    "podLabels": {"team": "docs"},
    "podAnnotations": {"example.com/note": "hello: world"},
}
MONITORING = {
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True},
    }
}
SPECS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "hpa": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 7, "targetCPUUtilizationPercentage": 60}},
    "pdb-min": {"podDisruptionBudget": {"minAvailable": 1}},
    "pdb-max-percent": {"podDisruptionBudget": {"maxUnavailable": "25%"}},
    "monitoring": MONITORING,
    "secrets": SECRETS,
    "placement": PLACEMENT,
    "policy": {"networkPolicy": {"enabled": True, "from": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]}},
    "policy-deny": {"networkPolicy": {"enabled": True, "allowSameNamespace": False}},
    "env": {"env": [{"name": "OCR_LOG_LEVEL", "value": "debug"}, {"name": "OCR_WORKERS", "value": "3"}]},
    "everything": {
        **SECRETS,
        **PLACEMENT,
        **MONITORING,
        "autoscaling": {"enabled": True},
        "podDisruptionBudget": {"maxUnavailable": 1},
    },
}


def make_cr(spec: dict[str, Any], name: str = "ocr", namespace: str = "team") -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": UID, "generation": 1},
        "spec": copy.deepcopy(spec),
    }


def build(spec: dict[str, Any], ctx: BuildContext = CTX) -> dict[str, dict[str, Any]]:
    cr = make_cr(spec)
    children = build_children(cr, parse_spec(cr), ctx)
    by_kind = {child["kind"]: child for child in children}
    assert len(by_kind) == len(children), "one child per kind"
    return by_kind


def container(children: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = children["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def env_of(children: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(children)["env"]}


def pod_hash(children: dict[str, dict[str, Any]]) -> str:
    return children["Deployment"]["spec"]["template"]["metadata"]["annotations"][constants.CONFIG_HASH_ANNOTATION]


def _monitoring_schema(kind: str) -> dict[str, Any]:
    return yaml.safe_load((SCHEMAS / f"{kind.lower()}.schema.yaml").read_text(encoding="utf-8"))


# --- every child, every spec: valid, labelled, owned ------------------------------------------------


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_every_child_is_valid_labelled_and_owned(spec: dict[str, Any]) -> None:
    cr = make_cr(spec)
    children = build_children(cr, parse_spec(cr), CTX)
    order = [child_type.kind for child_type in CHILD_TYPES]
    kinds = [child["kind"] for child in children]
    assert kinds == sorted(kinds, key=order.index), "children come in apply order"
    for child in children:
        if child["apiVersion"] == constants.MONITORING_API_VERSION:
            jsonschema.validate(child, _monitoring_schema(child["kind"]))
        else:
            kubernetes_validate.validate(child, "1.31", strict=True)
        metadata = child["metadata"]
        assert metadata["namespace"] == "team"
        assert metadata["name"] == child_name("ocr", child["kind"])
        assert metadata["ownerReferences"] == [
            {
                "apiVersion": constants.API_VERSION,
                "kind": constants.KIND,
                "name": "ocr",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = metadata["labels"]
        assert labels[constants.LABEL_NAME] == "catalyst-ocr"
        assert labels[constants.LABEL_INSTANCE] == "ocr"
        assert labels[constants.LABEL_PART_OF] == "catalyst-ocr"
        assert labels[constants.LABEL_MANAGED_BY] == "catalyst-ocr-operator"
        assert labels[constants.LABEL_VERSION] == "0.1.0"
        assert labels[constants.LABEL_COMPONENT] in (constants.COMPONENT_SERVER, constants.COMPONENT_MONITORING)


def test_strict_validation_would_catch_a_misspelt_field() -> None:
    """Guards the guard: the validators above really reject unknown fields."""
    children = build({})
    broken = copy.deepcopy(children["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.31", strict=True)
    monitor = build(MONITORING)["ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, _monitoring_schema("ServiceMonitor"))


def test_building_is_pure_and_deterministic() -> None:
    cr = make_cr(SPECS["everything"])
    before = copy.deepcopy(cr)
    spec = parse_spec(cr)
    first = build_children(cr, spec, CTX)
    second = build_children(cr, spec, CTX)
    assert first == second
    assert cr == before
    first[2]["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"})
    first[2]["spec"]["template"]["spec"]["tolerations"][0]["key"] = "changed"
    assert build_children(cr, spec, CTX) == second, "built objects share no mutable state with the spec"


# --- Deployment -------------------------------------------------------------------------------------


def test_default_deployment_runs_the_service_hardened() -> None:
    children = build({})
    assert list(children) == ["ConfigMap", "Service", "Deployment"]
    deployment = children["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {
        constants.LABEL_NAME: "catalyst-ocr",
        constants.LABEL_INSTANCE: "ocr",
        constants.LABEL_COMPONENT: constants.COMPONENT_SERVER,
    }
    template = deployment["spec"]["template"]
    assert selector.items() <= template["metadata"]["labels"].items()
    pod = template["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["terminationGracePeriodSeconds"] > Settings().shutdown_grace_seconds
    main = container(children)
    assert main["image"] == CTX.default_image
    assert main["ports"] == [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    security = main["securityContext"]
    assert security["runAsUser"] == 1000 and security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["livenessProbe"]["httpGet"] == {"path": LIVENESS_PATH, "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": READINESS_PATH, "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": LIVENESS_PATH, "port": "http"}
    mounts = {mount["mountPath"]: mount["name"] for mount in main["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes[mounts["/tmp"]] == {"name": mounts["/tmp"], "emptyDir": {}}
    assert volumes[mounts[CONTAINER_DATA_DIR]] == {"name": mounts[CONTAINER_DATA_DIR], "emptyDir": {}}
    assert main["envFrom"] == [{"configMapRef": {"name": children["ConfigMap"]["metadata"]["name"]}}]
    env = env_of(children)
    assert env["OMP_THREAD_LIMIT"] == {"name": "OMP_THREAD_LIMIT", "value": "1"}
    assert env[EnvVar.WORKERS]["value"] == "1"
    assert main["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }


@pytest.mark.parametrize(
    ("resources", "ocr", "workers"),
    [
        ({"limits": {"cpu": "1500m"}}, {}, "2"),
        ({"limits": {"cpu": 3}, "requests": {"cpu": "1"}}, {}, "3"),
        ({"requests": {"cpu": "250m"}}, {}, "1"),
        ({"limits": {"cpu": "2.5"}}, {}, "3"),
        ({}, {}, "1"),
        ({"limits": {"cpu": "4"}}, {"workers": 6}, "6"),
        ({"limits": {"cpu": "4"}}, {"workers": 0}, "0"),
    ],
)
def test_workers_follow_the_cpu_limit_unless_set(resources: dict[str, Any], ocr: dict[str, Any], workers: str) -> None:
    assert env_of(build({"resources": resources, "ocr": ocr}))[EnvVar.WORKERS]["value"] == workers


def test_custom_image_and_pull_settings() -> None:
    children = build({"image": "registry.example.com/ocr@sha256:" + "ab" * 32, "imagePullPolicy": "Always"})
    assert container(children)["image"].startswith("registry.example.com/ocr@sha256:")
    assert container(children)["imagePullPolicy"] == "Always"
    assert children["Deployment"]["metadata"]["labels"][constants.LABEL_VERSION] == "sha256-abababababab"


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("ghcr.io/catalyst-ocr/catalyst-ocr:0.1.0", "0.1.0"),
        ("registry.local:5000/ocr", "latest"),
        ("registry.local:5000/ocr:v2+build.7", "v2-build.7"),
        ("ocr:1.0@sha256:" + "cd" * 32, "1.0"),
        ("ocr:" + "x" * 80, "x" * 63),
    ],
)
def test_version_label_is_a_valid_label_value_from_the_image(image: str, label: str) -> None:
    assert version_label(image) == label
    assert len(label) <= 63 and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", label)
    assert build({"image": image})["Service"]["metadata"]["labels"][constants.LABEL_VERSION] == label


def test_secrets_reach_the_pod_only_by_reference() -> None:
    cr = make_cr(SECRETS)
    spec = parse_spec(cr)
    assert [(ref.name, ref.key) for ref in referenced_secrets(spec)] == [
        ("pg", "dsn"),
        ("cache", "url"),
        ("keys", "api-keys"),
    ]
    children = {child["kind"]: child for child in build_children(cr, spec, CTX)}
    env = env_of(children)
    assert env[EnvVar.DATABASE_URL] == {
        "name": "OCR_DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}},
    }
    assert env[EnvVar.REDIS_URL]["valueFrom"] == {"secretKeyRef": {"name": "cache", "key": "url"}}
    assert EnvVar.API_KEYS not in env
    keys_file = env[EnvVar.API_KEYS_FILE]["value"]
    mount = next(m for m in container(children)["volumeMounts"] if keys_file.startswith(m["mountPath"] + "/"))
    assert mount["readOnly"] is True and "subPath" not in mount, "a subPath mount would not see rotated keys"
    volume = next(
        v for v in children["Deployment"]["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    assert volume["secret"]["secretName"] == "keys"
    assert volume["secret"]["items"] == [{"key": "api-keys", "path": "api-keys"}]
    assert keys_file == f"{API_KEYS_DIR}/api-keys"
    configmap = children["ConfigMap"]["data"]
    assert not SECRET_ENV_VARS & set(configmap)
    assert not any(ref in value for value in configmap.values() for ref in ("pg", "cache", "keys", "dsn"))


def test_no_secret_env_var_is_ever_written_to_the_configmap() -> None:
    for spec in SPECS.values():
        assert not SECRET_ENV_VARS & set(build(spec)["ConfigMap"]["data"])


def test_placement_and_pod_metadata_are_copied_onto_the_pods() -> None:
    children = build(PLACEMENT)
    template = children["Deployment"]["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == PLACEMENT["nodeSelector"]
    assert pod["tolerations"] == PLACEMENT["tolerations"]
    assert pod["affinity"] == PLACEMENT["affinity"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread == {
        **PLACEMENT["topologySpreadConstraints"][0],
        "labelSelector": {"matchLabels": children["Deployment"]["spec"]["selector"]["matchLabels"]},
    }, "a constraint without a selector would count no pods"
    assert pod["priorityClassName"] == "high"
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert template["metadata"]["labels"]["team"] == "docs"
    assert template["metadata"]["annotations"]["example.com/note"] == "hello: world"
    assert constants.CONFIG_HASH_ANNOTATION in template["metadata"]["annotations"]
    assert "team" not in children["Deployment"]["spec"]["selector"]["matchLabels"]


def test_spread_constraint_keeps_its_own_selector() -> None:
    own = {"matchLabels": {"team": "docs"}}
    constraint = {**PLACEMENT["topologySpreadConstraints"][0], "labelSelector": own}
    children = build({"topologySpreadConstraints": [constraint]})
    assert children["Deployment"]["spec"]["template"]["spec"]["topologySpreadConstraints"] == [constraint]


def test_extra_env_replaces_operator_values_in_place_and_appends_the_rest() -> None:
    children = build(SPECS["env"])
    names = [item["name"] for item in container(children)["env"]]
    assert names == ["OMP_THREAD_LIMIT", "OCR_WORKERS", "OCR_LOG_LEVEL"]
    env = env_of(children)
    assert env["OCR_WORKERS"]["value"] == "3"
    assert env["OCR_LOG_LEVEL"]["value"] == "debug"


# --- ConfigMap and the pod-template hash --------------------------------------------------------------


def test_configmap_carries_the_ocr_defaults_the_service_reads() -> None:
    cr_spec = {
        "languages": ["eng", "deu"],
        "ocr": {"lang": "deu", "psm": 6, "oem": 1, "preprocess": "none", "timeoutSeconds": 30, "maxPages": 9},
    }
    data = build(cr_spec)["ConfigMap"]["data"]
    settings = Settings.from_env(data)  # what the pod's service would read
    assert settings.languages == ("eng", "deu")
    assert (settings.default_lang, settings.default_psm, settings.default_preprocess) == ("deu", 6, "none")
    assert (settings.timeout_seconds, settings.max_pages, settings.port) == (30.0, 9, HTTP_PORT)
    assert settings.data_dir == CONTAINER_DATA_DIR
    assert all(key.startswith("OCR_") for key in data)


def test_pod_template_hash_changes_with_config_or_secrets_and_only_then() -> None:
    base = pod_hash(build({}))
    assert pod_hash(build({})) == base
    assert pod_hash(build({"ocr": {"psm": 6}})) != base
    assert pod_hash(build({"languages": ["eng", "deu"]})) != base
    assert pod_hash(build({}, BuildContext(CTX.default_image, True, secret_hash="s2"))) != base
    # Nothing the pods read at start-up changes with these: no needless rollout.
    assert pod_hash(build({"replicas": 5})) == base
    assert pod_hash(build({"autoscaling": {"enabled": True}})) == base
    assert pod_hash(build({"service": {"port": 8080}})) == base
    assert pod_hash(build({}, BuildContext(CTX.default_image, False, secret_hash="s1"))) == base


# --- HPA, PDB, Service, NetworkPolicy -----------------------------------------------------------------


def test_autoscaling_owns_the_replica_count() -> None:
    children = build(SPECS["hpa"])
    assert "replicas" not in children["Deployment"]["spec"]
    hpa = children["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ocr"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 7)
    assert hpa["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}
    ]
    assert "HorizontalPodAutoscaler" not in build({"replicas": 4})
    assert build({"replicas": 4})["Deployment"]["spec"]["replicas"] == 4


@pytest.mark.parametrize(
    ("budget", "field", "value"),
    [({"minAvailable": 1}, "minAvailable", 1), ({"maxUnavailable": "25%"}, "maxUnavailable", "25%")],
)
def test_disruption_budget_variants(budget: dict[str, Any], field: str, value: int | str) -> None:
    pdb = build({"podDisruptionBudget": budget})["PodDisruptionBudget"]["spec"]
    assert pdb[field] == value
    assert {"minAvailable", "maxUnavailable"} - {field} & set(pdb) == set()
    assert pdb["selector"]["matchLabels"][constants.LABEL_INSTANCE] == "ocr"
    assert "PodDisruptionBudget" not in build({})


def test_service_exposes_the_named_http_port() -> None:
    cr_spec = {"service": {"type": "LoadBalancer", "port": 8443, "annotations": {"lb.example.com/internal": "true"}}}
    service = build(cr_spec)["Service"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8443, "targetPort": "http", "protocol": "TCP"}]
    assert service["metadata"]["annotations"] == {"lb.example.com/internal": "true"}
    assert service["spec"]["selector"] == build({})["Deployment"]["spec"]["selector"]["matchLabels"]
    assert service_url(parse_spec(make_cr(cr_spec))) == "http://ocr.team.svc:8443"


def test_network_policy_admits_only_the_chosen_sources_to_the_http_port() -> None:
    policy = build(SPECS["policy"])["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": "http"}]
    assert rule["from"] == [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": {"team": "edge"}}}]
    assert build(SPECS["policy-deny"])["NetworkPolicy"]["spec"]["ingress"] == []
    # The API pods and the job worker pods (their port serves probes and /metrics), nothing else.
    assert policy["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "catalyst-ocr", "app.kubernetes.io/instance": "ocr"},
        "matchExpressions": [
            {"key": "app.kubernetes.io/component", "operator": "In", "values": ["server", "job-worker"]}
        ],
    }
    assert "NetworkPolicy" not in build({})


# --- monitoring -------------------------------------------------------------------------------------


def test_monitoring_children_need_the_api_and_the_switch() -> None:
    assert {"ServiceMonitor", "PrometheusRule"} <= set(build(MONITORING))
    unavailable = BuildContext(CTX.default_image, monitoring_available=False, secret_hash="s1")
    assert not {"ServiceMonitor", "PrometheusRule"} & set(build(MONITORING, unavailable))
    assert not {"ServiceMonitor", "PrometheusRule"} & set(build({}))
    only_monitor = {"monitoring": {"serviceMonitor": {"enabled": True}}}
    assert "ServiceMonitor" in build(only_monitor) and "PrometheusRule" not in build(only_monitor)


def test_service_monitor_scrapes_the_metrics_path_of_this_instance() -> None:
    children = build(MONITORING)
    monitor = children["ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= children["Service"]["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", METRICS_PATH, "30s")


def _metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(ocr_[a-z_]+)", expr))


def _exported_series_names() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_alert_rules_use_metrics_the_service_exports() -> None:
    exported = _exported_series_names()
    alerts = [rule for group in rule_groups() for rule in group["rules"]]
    assert {rule["alert"] for rule in alerts} >= {
        "CatalystOcrDown",
        "CatalystOcrHighErrorRate",
        "CatalystOcrHighLatency",
        "CatalystOcrJobsBacklog",
    }
    for rule in alerts:
        assert RULES_JOB_MATCHER in rule["expr"], rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert _metric_names_in(rule["expr"]) <= exported, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_prometheus_rule_is_scoped_to_this_instance() -> None:
    rule = build(MONITORING)["PrometheusRule"]
    groups = rule["spec"]["groups"]
    assert len(groups) == len(rule_groups())
    for group in groups:
        for alert in group["rules"]:
            assert RULES_JOB_MATCHER not in alert["expr"]
            assert 'namespace="team", job="ocr"' in alert["expr"]
    other = build_children(make_cr(MONITORING, name="other"), parse_spec(make_cr(MONITORING, name="other")), CTX)[-1]
    assert other["spec"]["groups"][0]["name"] != groups[0]["name"], "two instances' groups do not collide"


# --- spec errors the builders depend on ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"resources": {"limits": {"cpu": "lots"}}}, "spec.resources.limits.cpu"),
        ({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}, "spec.resources.requests.cpu"),
        ({"resources": {"claims": []}}, "spec.resources.claims"),
        ({"podLabels": {"team": "not a label value"}}, "spec.podLabels[team]"),
        ({"nodeSelector": {"bad key!": "x"}}, "spec.nodeSelector"),
        ({"service": {"annotations": {"ok": 1}}}, "spec.service.annotations[ok]"),
        ({"replicas": "3"}, "spec.replicas"),
        ({"autoscaling": {"enabled": "yes"}}, "spec.autoscaling.enabled"),
        ({"image": " "}, "spec.image"),
        ({"imagePullSecrets": [{}]}, "spec.imagePullSecrets[0].name"),
        ({"env": [{"name": "A"}, {"name": "A"}]}, "spec.env[1].name"),
        ({"tolerations": [{"operator": "Sometimes"}]}, "spec.tolerations[0].operator"),
        ({"ocr": []}, "spec.ocr"),
    ],
)
def test_spec_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(make_cr(spec))
    assert raised.value.field == field
    assert str(raised.value).startswith(field)


def test_a_cr_without_uid_cannot_own_children() -> None:
    cr = make_cr({})
    del cr["metadata"]["uid"]
    with pytest.raises(SpecError) as raised:
        build_children(cr, parse_spec(cr), CTX)
    assert raised.value.field == "metadata.uid"
