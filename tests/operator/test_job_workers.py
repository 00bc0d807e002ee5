"""`spec.jobWorkers`: the worker Deployment, what scales it, and the objects checked against the real
upstream CRDs (`../shared/crds/`, KEDA and Prometheus Operator, unmodified): defaults applied,
unknown fields refused and their own CEL rules evaluated, as their API server would.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from catalyst_operator import constants
from catalyst_operator.builders import CHILD_TYPES, BuildContext, Scaler, build_children, job_worker_scaler
from catalyst_operator.builders.job_workers import backlog_promql
from catalyst_operator.spec import SpecError, parse_spec
from catalyst_operator.status import backlog_from_hpa
from test_builders import CTX, MONITORING, make_cr
from test_crd_api_server import SHIPPED_CRDS, crd_id, ocr_deployment, versions
from test_crd_tools import admit

from ocr_service.contract import BACKLOG_METRIC, BACKLOG_SQL, JOB_WORKER_COMMAND, EnvVar

SHARED_CRDS = Path(__file__).resolve().parents[3] / "shared" / "crds"
DB = {"database": {"urlSecretRef": {"name": "pg", "key": "dsn"}}}
SCALED = {**DB, "jobWorkers": {"autoscaling": {"enabled": True, "minReplicas": 0, "maxReplicas": 12}}}
KEDA = BuildContext(default_image=CTX.default_image, monitoring_available=True, secret_hash="s1", keda_available=True)
EXTERNAL = BuildContext(
    default_image=CTX.default_image, monitoring_available=True, secret_hash="s1", backlog_metric_available=True
)
NO_KEDA = CTX


def upstream_schema(project: str, kind: str) -> dict[str, Any]:
    (path,) = (SHARED_CRDS / project).glob(f"*_{kind.lower()}s.yaml")
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def children(spec: dict[str, Any], ctx: BuildContext = NO_KEDA) -> dict[str, dict[str, Any]]:
    """Children keyed `Kind` (the API's) or `Kind-workers` (the job workers')."""
    built = build_children(make_cr(spec), parse_spec(make_cr(spec)), ctx)
    by_key = {}
    for child in built:
        suffix = (
            constants.JOB_WORKERS_SUFFIX if child["metadata"]["name"].endswith(constants.JOB_WORKERS_SUFFIX) else ""
        )
        by_key[child["kind"] + suffix] = child
    assert len(by_key) == len(built), "one child per kind and role"
    return by_key


def the_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "<ref>") for item in the_container(deployment)["env"]}


@pytest.mark.parametrize("ctx", [NO_KEDA, EXTERNAL, KEDA], ids=["no-keda", "external-metric", "keda"])
@pytest.mark.parametrize(
    "spec",
    [
        {**DB, "jobWorkers": {}},
        SCALED,
        {**SCALED, **MONITORING, "jobWorkers": {"autoscaling": {"enabled": True, "trigger": "prometheus",
                                                               "prometheusServerAddress": "http://prom:9090"}}},
    ],
    ids=["fixed", "scaled", "scaled-prometheus"],
)  # fmt: skip
def test_every_child_is_valid_against_its_real_schema_in_apply_order(spec: dict[str, Any], ctx: BuildContext) -> None:
    built = build_children(make_cr(spec), parse_spec(make_cr(spec)), ctx)
    order = [(t.kind, t.name_suffix) for t in CHILD_TYPES]
    keys = [
        (c["kind"], constants.JOB_WORKERS_SUFFIX if c["metadata"]["name"].endswith("-workers") else "") for c in built
    ]
    assert keys == sorted(keys, key=order.index), "children come in apply order (a scaler after its target)"
    names = {(t.kind, t.name_suffix): t.name("ocr") for t in CHILD_TYPES}
    for child, key in zip(built, keys, strict=True):
        assert child["metadata"]["name"] == names[key]
        if child["apiVersion"] == constants.KEDA_API_VERSION:
            _, errors = admit(copy.deepcopy(child), upstream_schema("keda", child["kind"]))
            assert errors == [], (child["kind"], errors)
        elif child["apiVersion"] == constants.MONITORING_API_VERSION:
            _, errors = admit(copy.deepcopy(child), upstream_schema("prometheus-operator", child["kind"]))
            assert errors == [], (child["kind"], errors)
        else:
            kubernetes_validate.validate(child, "1.31", strict=True)


def test_the_upstream_schemas_really_refuse_a_misspelt_field() -> None:
    """Guards the guard: a typo in a ScaledObject would be pruned silently by the real API server."""
    scaled = children(SCALED, KEDA)["ScaledObject-workers"]
    scaled["spec"]["minReplicas"] = 0  # KEDA calls it minReplicaCount
    _, errors = admit(scaled, upstream_schema("keda", "ScaledObject"))
    assert errors and "minReplicas" in errors[0]
    too_few = children(SCALED, KEDA)["ScaledObject-workers"]
    too_few["spec"]["minReplicaCount"] = 50  # above maxReplicaCount: KEDA's own CEL rule
    assert any(
        "minReplicaCount must be less than" in e for e in admit(too_few, upstream_schema("keda", "ScaledObject"))[1]
    )


def test_job_workers_run_the_same_image_apart_from_the_api() -> None:
    spec = {
        **DB,
        "auth": {"apiKeysSecretRef": {"name": "keys"}},
        "ocr": {"timeoutSeconds": 120},
        "jobWorkers": {
            "replicas": 3,
            "resources": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "3", "memory": "2Gi"}},
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    built = children(spec)
    api, workers = built["Deployment"], built["Deployment-workers"]
    assert the_container(workers)["image"] == the_container(api)["image"]
    assert the_container(workers)["command"] == list(JOB_WORKER_COMMAND)
    # Probed and scraped like the API pods (`python -m ocr_service.jobs` serves /livez, /readyz, /metrics).
    for field in ("ports", "startupProbe", "livenessProbe", "readinessProbe"):
        assert the_container(workers)[field] == the_container(api)[field], field
    assert env(api)[EnvVar.JOB_WORKERS_ENABLED] == "false", "the API pods stop claiming job pages"
    assert EnvVar.JOB_WORKERS_ENABLED not in env(workers)
    assert env(workers)[EnvVar.WORKERS] == "3", "pages at once follow the workers' own CPU limit"
    assert env(workers)[EnvVar.DATABASE_URL] == "<ref>" and EnvVar.API_KEYS_FILE not in env(workers)
    # Graceful scale-in: the page in progress may take up to the job time limit.
    assert env(workers)[EnvVar.SHUTDOWN_GRACE_SECONDS] == "120"
    assert workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 130
    assert workers["spec"]["replicas"] == 3
    pod = workers["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "batch"} and pod["tolerations"][0]["key"] == "batch"
    assert "nodeSelector" not in api["spec"]["template"]["spec"]
    worker_selector = workers["spec"]["selector"]["matchLabels"]
    assert worker_selector[constants.LABEL_COMPONENT] == constants.COMPONENT_JOB_WORKER
    assert built["Service"]["spec"]["selector"][constants.LABEL_COMPONENT] == constants.COMPONENT_SERVER
    without = children(DB)
    assert "Deployment-workers" not in without and EnvVar.JOB_WORKERS_ENABLED not in env(without["Deployment"])


@pytest.mark.parametrize(
    ("ctx", "scaler", "kinds"),
    [
        (KEDA, Scaler.KEDA, {"ScaledObject-workers", "TriggerAuthentication-workers"}),
        (EXTERNAL, Scaler.HPA_EXTERNAL, {"HorizontalPodAutoscaler-workers"}),
        (NO_KEDA, Scaler.HPA_CPU, {"HorizontalPodAutoscaler-workers"}),
    ],
    ids=["keda", "external-metric", "cpu"],
)
def test_exactly_one_scaler_owns_the_worker_replicas(ctx: BuildContext, scaler: Scaler, kinds: set[str]) -> None:
    built = children(SCALED, ctx)
    assert job_worker_scaler(parse_spec(make_cr(SCALED)), ctx) is scaler
    scalers = {key for key in built if key.endswith("-workers") and key != "Deployment-workers"}
    assert scalers == kinds, "never a ScaledObject and our own HPA for the same Deployment"
    assert "replicas" not in built["Deployment-workers"]["spec"], "the replica count belongs to the scaler"


def test_the_scaled_object_counts_queued_and_running_pages_and_wakes_from_zero() -> None:
    built = children(SCALED, KEDA)
    scaled = built["ScaledObject-workers"]["spec"]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ocr-workers"}
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (0, 12)
    assert scaled["cooldownPeriod"] == 300
    assert scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 300
    }
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"] == {"query": BACKLOG_SQL, "targetQueryValue": "4", "activationTargetQueryValue": "0"}
    assert "'queued', 'running'" in BACKLOG_SQL
    auth = built["TriggerAuthentication-workers"]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert auth["spec"] == {"secretTargetRef": [{"parameter": "connection", "name": "pg", "key": "dsn"}]}


def test_the_prometheus_trigger_reads_the_backlog_gauge_of_this_instance() -> None:
    spec = {**SCALED, "jobWorkers": {"autoscaling": {"enabled": True, "pagesPerReplica": 8, "trigger": "prometheus",
                                                     "prometheusServerAddress": "http://prom:9090"}}}  # fmt: skip
    built = children(spec, KEDA)
    assert "TriggerAuthentication-workers" not in built
    (trigger,) = built["ScaledObject-workers"]["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"] == {
        "serverAddress": "http://prom:9090",
        "query": f'max({BACKLOG_METRIC}{{namespace="team", job="ocr"}})',
        "threshold": "8",
        "activationThreshold": "0",
    }


def test_fallback_hpas_keep_at_least_one_pod() -> None:
    cpu = children(SCALED, NO_KEDA)["HorizontalPodAutoscaler-workers"]["spec"]
    assert cpu["minReplicas"] == 1 and cpu["maxReplicas"] == 12
    assert cpu["metrics"][0]["resource"]["name"] == "cpu"
    assert cpu["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    external = children(SCALED, EXTERNAL)["HorizontalPodAutoscaler-workers"]["spec"]
    (metric,) = external["metrics"]
    assert metric["external"]["metric"]["name"] == BACKLOG_METRIC
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "4"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"jobWorkers": {}}, "spec.jobWorkers"),
        ({**DB, "jobWorkers": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}},
         "spec.jobWorkers.autoscaling.minReplicas"),
        ({**DB, "jobWorkers": {"autoscaling": {"trigger": "prometheus"}}},
         "spec.jobWorkers.autoscaling.prometheusServerAddress"),
        ({**DB, "jobWorkers": {"autoscaling": {"trigger": "redis"}}}, "spec.jobWorkers.autoscaling.trigger"),
        ({**DB, "jobWorkers": {"tolerations": [{"operator": "Sometimes"}]}}, "spec.jobWorkers.tolerations[0].operator"),
    ],
    ids=["no-database", "min-above-max", "prometheus-without-address", "unknown-trigger", "bad-toleration"],
)  # fmt: skip
def test_spec_errors_name_the_job_workers_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(make_cr(spec))
    assert caught.value.field == field


JOB_WORKERS_REFUSED = {
    "no-database": ({"jobWorkers": {}}, ".spec.jobWorkers", "jobWorkers needs spec.database"),
    "min-above-max": (
        {**DB, "jobWorkers": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}},
        ".spec.jobWorkers.autoscaling.minReplicas",
        "must not exceed maxReplicas",
    ),
    "prometheus-without-address": (
        {**DB, "jobWorkers": {"autoscaling": {"trigger": "prometheus"}}},
        ".spec.jobWorkers.autoscaling.prometheusServerAddress",
        "needs jobWorkers.autoscaling.prometheusServerAddress",
    ),
}


@pytest.mark.parametrize("path", SHIPPED_CRDS, ids=crd_id)
@pytest.mark.parametrize(("spec", "where", "message"), JOB_WORKERS_REFUSED.values(), ids=JOB_WORKERS_REFUSED.keys())
def test_the_api_server_refuses_job_workers_it_cannot_run(
    path: Path, spec: dict[str, Any], where: str, message: str
) -> None:
    for _, schema in versions(path):
        _, errors = admit(ocr_deployment(spec), schema)
        assert len(errors) == 1 and errors[0].startswith(f"{where}: ") and message in errors[0], errors


@pytest.mark.parametrize("path", SHIPPED_CRDS, ids=crd_id)
def test_scale_to_zero_job_workers_are_admitted_with_their_defaults(path: Path) -> None:
    for _, schema in versions(path):
        defaulted, errors = admit(ocr_deployment(SCALED), schema)
        assert errors == []
        scaling = defaulted["spec"]["jobWorkers"]["autoscaling"]
        assert scaling["minReplicas"] == 0 and scaling["trigger"] == "postgresql"
        assert parse_spec(make_cr(defaulted["spec"])) == parse_spec(make_cr(SCALED))


@pytest.mark.parametrize(
    ("hpa", "backlog"),
    [
        (None, None),
        ({"status": {"currentReplicas": 3}}, None),
        ({"status": {"currentReplicas": 3, "currentMetrics": [{"type": "External", "external": {
            "metric": {"name": "s0-postgresql"}, "current": {"averageValue": "2500m"}}}]}}, 8),
        ({"status": {"currentReplicas": 2, "currentMetrics": [{"type": "External", "external": {
            "metric": {"name": "x"}, "current": {"value": "41"}}}]}}, 41),
        ({"status": {"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {}}}]}}, None),
    ],
    ids=["none", "not-measured", "average-times-pods", "value", "cpu-only"],
)  # fmt: skip
def test_backlog_is_read_back_from_the_hpa_measurement(hpa: dict[str, Any] | None, backlog: int | None) -> None:
    assert backlog_from_hpa(hpa) == backlog


def test_the_prometheus_rule_alerts_on_a_growing_backlog_at_max_workers() -> None:
    rule = children({**SCALED, **MONITORING})["PrometheusRule"]
    (group,) = [g for g in rule["spec"]["groups"] if g["name"].startswith("catalyst-ocr-autoscaling.")]
    (alert,) = group["rules"]
    assert alert["alert"] == "CatalystOcrJobBacklogGrowingAtMaxWorkers"
    assert f'{BACKLOG_METRIC}{{namespace="team", job="ocr"}}' in alert["expr"]
    assert 'kube_deployment_status_replicas{namespace="team", deployment="ocr-workers"}) >= 12' in alert["expr"]
    assert alert["expr"].count("(") == alert["expr"].count(")")
    plain = children({**DB, **MONITORING})["PrometheusRule"]
    assert not [g for g in plain["spec"]["groups"] if g["name"].startswith("catalyst-ocr-autoscaling.")]


def test_the_operators_promql_passes_promtool(tmp_path: Path) -> None:
    """The alert and the prometheus trigger's query, through Prometheus' own parser (when installed)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool (apt-get install prometheus)")
    spec = {**SCALED, **MONITORING}
    groups = children(spec)["PrometheusRule"]["spec"]["groups"]
    query = {"record": "catalyst:backlog", "expr": backlog_promql(parse_spec(make_cr(spec)))}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [*groups, {"name": "trigger", "rules": [query]}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_pod_monitor_scrapes_the_job_worker_pods_under_their_own_job_label() -> None:
    built = children({**DB, **MONITORING, "jobWorkers": {}})
    monitor, service_monitor = built["PodMonitor-workers"], built["ServiceMonitor"]
    pod_labels = built["Deployment-workers"]["spec"]["template"]["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), "it selects the worker pods"
    assert selector["app.kubernetes.io/component"] == "job-worker", "and only them: the API pods are the Service's"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (api_endpoint,) = service_monitor["spec"]["endpoints"]
    assert {key: endpoint[key] for key in api_endpoint} == api_endpoint, "same port, path, interval, timeout"
    # The API's alert rules select job="ocr": worker series apart keep e.g. CatalystOcrDown about the API.
    assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": "ocr-workers"}]
    assert monitor["metadata"]["labels"]["release"] == "prom", "the labels your Prometheus selects"
    assert "PodMonitor-workers" not in children({**DB, "jobWorkers": {}}), "not without the ServiceMonitor"
    assert "PodMonitor-workers" not in children({**DB, **MONITORING}), "not without job workers"


def test_a_job_worker_pod_that_stops_answering_its_scrape_is_alerted_on() -> None:
    rule = children({**DB, **MONITORING, "jobWorkers": {}})["PrometheusRule"]
    (group,) = [g for g in rule["spec"]["groups"] if g["name"].startswith("catalyst-ocr-job-workers.")]
    (alert,) = group["rules"]
    assert alert["alert"] == "CatalystOcrJobWorkerDown"
    assert alert["expr"] == 'up{namespace="team", job="ocr-workers"} == 0', "the PodMonitor's job label"
    without_scrape = {**DB, "monitoring": {"prometheusRule": {"enabled": True}}, "jobWorkers": {}}
    groups = children(without_scrape)["PrometheusRule"]["spec"]["groups"]
    assert not [g for g in groups if g["name"].startswith("catalyst-ocr-job-workers.")], "no PodMonitor: no up series"
