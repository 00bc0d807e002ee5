"""End to end: `kubectl apply -f manifests/samples/<sample>.yaml` on a cluster running the operator
gives a Ready OcrDeployment — once the Deployment controller (emulated here by seeding the
Deployment's status) reports the pods available — and a resync afterwards writes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalyst_operator.reconcile import reconcile
from catalyst_operator.resources import DEPLOYMENTS, OCR_DEPLOYMENTS, POD_MONITORS, SECRETS
from catalyst_operator.testing import eventually, install_monitoring_crds

pytestmark = pytest.mark.timeout(120)  # each test has its own emulated cluster and operator: no xdist group

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"


def ready(k8s, name: str) -> dict[str, Any] | None:
    for entry in ((k8s.cr(name) or {}).get("status") or {}).get("conditions") or []:
        if entry["type"] == "Ready" and entry["status"] == "True":
            return entry
    return None


@pytest.mark.parametrize("sample", sorted(path.name for path in SAMPLES.glob("*.yaml")))
async def test_sample_becomes_ready_and_then_stays_quiet(sample, k8s, cluster, start_operator, runtime):
    install_monitoring_crds(cluster)
    await start_operator()
    documents = [doc for doc in yaml.safe_load_all((SAMPLES / sample).read_text()) if doc]
    names = []
    for doc in documents:
        doc["metadata"]["namespace"] = k8s.namespace  # the operator under test watches one namespace
        if doc["kind"] == "Secret":
            await k8s.create(SECRETS, doc)
        elif doc["kind"] == "OcrDeployment":
            await k8s.create(OCR_DEPLOYMENTS, doc)
            names.append(doc["metadata"]["name"])
    assert names, f"{sample} holds no OcrDeployment"

    for name in names:
        deployment = await eventually(lambda name=name: k8s.stored(DEPLOYMENTS, name))
        replicas = deployment["spec"].get("replicas", 1)
        if "replicas" not in deployment["spec"]:  # the HPA owns it: what the HPA would set
            replicas = (await eventually(lambda name=name: k8s.cr(name)))["spec"]["autoscaling"]["minReplicas"]
        available = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
        await k8s.patch(DEPLOYMENTS, name, {"status": available}, subresource="status")
        condition = await eventually(lambda name=name: ready(k8s, name))
        assert condition["observedGeneration"] == k8s.cr(name)["metadata"]["generation"]

    if sample == "full.yaml":  # job workers and monitoring: their pods are scraped through a PodMonitor
        for name in names:
            monitor = k8s.stored(POD_MONITORS, f"{name}-workers")
            assert monitor is not None and monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"

    await k8s.settle()
    writes = len(k8s.writes())
    for name in names:
        report = await asyncio.to_thread(reconcile, runtime, k8s.namespace, name)
        assert not report.applied.written and not report.status_written, report
    await k8s.settle()
    assert len(k8s.writes()) == writes
