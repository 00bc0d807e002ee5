"""End to end: job workers scaled on their backlog, with KEDA's CRDs absent, present, and installed
(then removed) while the operator runs — the real operator against the emulated API server.

Without KEDA the fallback is honest (`AutoscalingReady` False `KEDANotInstalled`, a CPU HPA with at
least one pod); with KEDA there is a ScaledObject and never our own HPA for the same Deployment;
KEDA's readiness and measured backlog flow back into the status. The cluster-wide case runs the
`catalyst-ocr-operator` process with the resync timer and the discovery cache set to an hour, so
only the CRD watch can explain a prompt reaction (as `test_e2e_monitoring_crds.py` does for monitoring).
"""

from __future__ import annotations

import os
from typing import Any

import kmock
import pytest
from catalyst_operator.apply import with_applied_hash
from catalyst_operator.resources import (
    CUSTOM_RESOURCE_DEFINITIONS,
    DEPLOYMENTS,
    HORIZONTAL_POD_AUTOSCALERS,
    KEDA_RESOURCES,
    OCR_DEPLOYMENTS,
    SCALED_OBJECTS,
    SECRETS,
    TRIGGER_AUTHENTICATIONS,
)
from catalyst_operator.testing import apply_monitoring_crds, eventually, install_monitoring_crds
from test_e2e_cli import kubeconfig, operator_process
from test_e2e_conditions import condition, events, has_condition
from test_e2e_monitoring_crds import HOUR, PROMPTLY, operator_requests
from test_e2e_rbac import grants, needed, role
from test_e2e_reconcile import secret

from ocr_service.contract import EnvVar

pytestmark = pytest.mark.timeout(120)

SCALED: dict[str, Any] = {
    "database": {"urlSecretRef": {"name": "db"}},
    "jobWorkers": {"autoscaling": {"enabled": True, "minReplicas": 0, "maxReplicas": 8, "pagesPerReplica": 5}},
}


async def uninstall_keda(cluster) -> None:
    """`kubectl delete` of KEDA's CRDs, as the operator sees it: discovery stops serving them, the CRDs go.

    A real API server refuses creates once a CRD is terminating, so the operator cannot "repair" the
    instances it watches being deleted; kmock cannot refuse them (and keeps serving a resource while
    any object of it is stored), so the instances are dropped without watch events first.
    """
    for resource in KEDA_RESOURCES:
        key = kmock.resource(resource.group, resource.version, resource.plural)
        for index in [k for k in list(cluster.objects.keys()) if k[0] == key]:
            del cluster.objects[index]
        del cluster.resources[f"{resource.api_version}/{resource.plural}"]
        async with cluster.delete(CUSTOM_RESOURCE_DEFINITIONS.object_path(None, resource.crd_name)) as response:
            assert response.status < 300, await response.text()


def worker_env(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value", "") for item in container["env"]}


async def test_without_keda_the_fallback_is_a_cpu_hpa_and_the_condition_says_so(k8s, operator):
    await k8s.create(SECRETS, secret("db", url="postgresql://pg.team.svc/ocr"))
    await k8s.create_cr("batch", SCALED)
    found = await eventually(has_condition(k8s, "batch", "AutoscalingReady", "False", "KEDANotInstalled"))
    assert "keda.sh/v1alpha1" in found["message"] and "at least 1 pod" in found["message"]
    hpa = await eventually(lambda: k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "batch-workers"))
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["metrics"][0]["type"] == "Resource"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "batch-workers"
    assert k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "batch") is None, "the API pods are not autoscaled here"
    api = k8s.stored(DEPLOYMENTS, "batch")
    assert worker_env(api)[EnvVar.JOB_WORKERS_ENABLED] == "false"
    assert k8s.stored(DEPLOYMENTS, "batch-workers") is not None
    assert (await eventually(lambda: events(k8s, "batch", "KEDANotInstalled")))[0]["type"] == "Warning"
    status = await eventually(lambda: (k8s.cr("batch") or {}).get("status", {}).get("jobWorkers"))
    assert status == {"replicas": 0, "readyReplicas": 0, "scaler": "HPA-CPU"}

    # The worker Deployment's progress is followed into the status.
    await k8s.patch(DEPLOYMENTS, "batch-workers", {"status": {"replicas": 2, "readyReplicas": 1}}, "status")
    await eventually(lambda: k8s.cr("batch")["status"]["jobWorkers"]["readyReplicas"] == 1)

    # Switching the job workers off removes their Deployment and HPA, and only those.
    await k8s.patch(OCR_DEPLOYMENTS, "batch", {"spec": {"jobWorkers": None}})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "batch-workers") is None)
    await eventually(lambda: k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "batch-workers") is None)
    assert k8s.stored(DEPLOYMENTS, "batch") is not None
    await eventually(has_condition(k8s, "batch", "AutoscalingReady", "True", "NotRequested"))
    await eventually(lambda: "jobWorkers" not in k8s.cr("batch")["status"])
    await eventually(lambda: EnvVar.JOB_WORKERS_ENABLED not in worker_env(k8s.stored(DEPLOYMENTS, "batch")))


async def test_with_keda_a_scaled_object_and_its_readiness_and_backlog_reach_the_status(k8s, cluster, start_operator):
    install_monitoring_crds(cluster, KEDA_RESOURCES)
    await start_operator()
    await k8s.create(SECRETS, secret("db", url="postgresql://pg.team.svc/ocr"))
    await k8s.create_cr("batch", SCALED)
    scaled = await eventually(lambda: k8s.stored(SCALED_OBJECTS, "batch-workers"))
    assert scaled["spec"]["minReplicaCount"] == 0 and scaled["spec"]["triggers"][0]["type"] == "postgresql"
    auth = k8s.stored(TRIGGER_AUTHENTICATIONS, "batch-workers")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "connection", "name": "db", "key": "url"}]
    await eventually(has_condition(k8s, "batch", "AutoscalingReady", "Unknown", "ScaledObjectPending"))
    assert k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "batch-workers") is None, "KEDA owns the HPA, not us"

    # What KEDA does: create its HPA, measure the backlog, report the ScaledObject ready.
    await k8s.create(
        HORIZONTAL_POD_AUTOSCALERS,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "keda-hpa-batch-workers"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "batch-workers"},
                "minReplicas": 1,
                "maxReplicas": 8,
            },
            "status": {
                "currentReplicas": 4,
                "desiredReplicas": 4,
                "currentMetrics": [
                    {
                        "type": "External",
                        "external": {"metric": {"name": "s0-postgresql"}, "current": {"averageValue": "4750m"}},
                    }
                ],
            },
        },
    )
    ready = {"type": "Ready", "status": "True", "reason": "ScaledObjectReady", "message": "ok"}
    await k8s.patch(
        SCALED_OBJECTS,
        "batch-workers",
        {"status": {"conditions": [ready], "hpaName": "keda-hpa-batch-workers"}},
        "status",
    )
    await eventually(has_condition(k8s, "batch", "AutoscalingReady", "True", "ScaledObjectReady"))
    jobs = await eventually(
        lambda: (
            k8s.cr("batch")["status"].get("jobWorkers", {}).get("backlog") is not None
            and k8s.cr("batch")["status"]["jobWorkers"]
        )
    )
    assert jobs["backlog"] == 19 and jobs["scaler"] == "KEDA"

    failing = {"type": "Ready", "status": "False", "reason": "ScaledObjectCheckFailed", "message": "no database"}
    await k8s.patch(SCALED_OBJECTS, "batch-workers", {"status": {"conditions": [failing]}}, "status")
    not_ready = await eventually(has_condition(k8s, "batch", "AutoscalingReady", "False", "ScaledObjectNotReady"))
    assert "no database" in not_ready["message"]


async def test_cluster_wide_operator_switches_scalers_as_soon_as_keda_comes_and_goes(k8s, cluster, tmp_path):
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig(tmp_path / "config", str(cluster.url).rstrip("/"))),
        "CATALYST_OPERATOR_DEFAULT_IMAGE": "registry.example/ocr:keda",
        "CATALYST_OPERATOR_RESYNC_SECONDS": HOUR,
        "CATALYST_OPERATOR_DISCOVERY_TTL_SECONDS": HOUR,
        "KUBERNETES_SERVICE_HOST": "",
    }
    async with operator_process(env, "--metrics-port", "0", "--standalone", "--all-namespaces") as running:
        await k8s.create(SECRETS, secret("db", url="postgresql://pg.team.svc/ocr"))
        await k8s.create_cr("batch", SCALED)
        await eventually(has_condition(k8s, "batch", "AutoscalingReady", "False", "KEDANotInstalled"), within=60)
        await eventually(lambda: k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "batch-workers"))
        await k8s.settle()

        await apply_monitoring_crds(cluster, discovery_lag=1.0, resources=KEDA_RESOURCES)
        await eventually(
            has_condition(k8s, "batch", "AutoscalingReady", "Unknown", "ScaledObjectPending"), within=PROMPTLY
        )
        assert k8s.stored(SCALED_OBJECTS, "batch-workers") is not None
        await eventually(lambda: k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "batch-workers") is None)
        assert condition(k8s.cr("batch"), "Ready")["status"] is not None
        # Quiet first: kmock would accept a create from a reconcile in flight after the CRD went (and
        # keep serving the resource while that object is stored); a real API server refuses it.
        await k8s.settle()

        await uninstall_keda(cluster)
        await eventually(has_condition(k8s, "batch", "AutoscalingReady", "False", "KEDANotInstalled"), within=PROMPTLY)
        await eventually(lambda: k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "batch-workers"))
        used = set().union(*(needed(request) for request in operator_requests(k8s)))
        assert used - grants(role("ClusterRole")) == set(), "the ClusterRole must allow every request"
    assert running.process.returncode == 0, running.output[-3000:]


@pytest.mark.resync_seconds(3)
async def test_namespaced_operator_picks_up_keda_on_its_resync_without_touching_crds(k8s, cluster, operator):
    await k8s.create(SECRETS, secret("db", url="postgresql://pg.team.svc/ocr"))
    await k8s.create_cr("batch", SCALED)
    await eventually(has_condition(k8s, "batch", "AutoscalingReady", "False", "KEDANotInstalled"))
    await apply_monitoring_crds(cluster, resources=KEDA_RESOURCES)
    await eventually(has_condition(k8s, "batch", "AutoscalingReady", "Unknown", "ScaledObjectPending"), within=PROMPTLY)
    await eventually(lambda: k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "batch-workers") is None)
    assert [r for r in operator_requests(k8s) if CUSTOM_RESOURCE_DEFINITIONS.plural in r.url.path] == []
    used = set().union(*(needed(request) for request in operator_requests(k8s)))
    assert used - grants(role("Role")) == set(), "the namespaced Role must allow every request"


def test_keda_rewriting_last_active_time_is_no_reason_to_reconcile(runtime):
    desired = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "batch-workers", "namespace": "team", "ownerReferences": []},
        "spec": {"scaleTargetRef": {"name": "batch-workers"}},
    }
    runtime.remember_desired("team", desired)
    ready = {"type": "Ready", "status": "True", "reason": "ScaledObjectReady", "message": "ok"}
    status = {"conditions": [ready], "hpaName": "h", "lastActiveTime": "2026-12-07T08:00:00Z"}
    live = {**with_applied_hash(desired), "status": status}  # what the API server holds after our apply
    runtime.saw_status(live)
    polled = {**live, "status": {**live["status"], "lastActiveTime": "2026-12-07T08:00:15Z"}}
    assert runtime.child_needs_reconcile(SCALED_OBJECTS, "MODIFIED", polled) is False
    failing = {**live, "status": {**live["status"], "conditions": [{**ready, "status": "False"}]}}
    assert runtime.child_needs_reconcile(SCALED_OBJECTS, "MODIFIED", failing) is True
