"""End to end: the real operator (kopf handlers in a thread) against the emulated API server.

Each test drives the cluster over HTTP like `kubectl` would and asserts what the operator
stored there: children and their content, the custom resource's status, Events, and — for the
"nothing changed" promise — the exact write requests it sent.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from catalyst_operator import constants
from catalyst_operator.apply import APPLIED_HASH_ANNOTATION
from catalyst_operator.handlers import LEGACY_FINALIZER
from catalyst_operator.reconcile import reconcile
from catalyst_operator.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    HORIZONTAL_POD_AUTOSCALERS,
    OCR_DEPLOYMENTS,
    POD_DISRUPTION_BUDGETS,
    SECRETS,
    SERVICES,
)
from catalyst_operator.testing import eventually

from ocr_service.contract import HTTP_PORT, LIVENESS_PATH, READINESS_PATH, EnvVar

pytestmark = pytest.mark.timeout(120)  # each test has its own emulated cluster and operator: no xdist group


def secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def config_hash(deployment: dict[str, Any] | None) -> str | None:
    if deployment is None:
        return None
    return deployment["spec"]["template"]["metadata"]["annotations"][constants.CONFIG_HASH_ANNOTATION]


def condition(cr: dict[str, Any] | None, condition_type: str) -> dict[str, Any] | None:
    for entry in ((cr or {}).get("status") or {}).get("conditions") or []:
        if entry["type"] == condition_type:
            return entry
    return None


def condition_is(k8s, name: str, condition_type: str, status: str, reason: str | None = None):
    def check() -> dict[str, Any] | None:
        found = condition(k8s.cr(name), condition_type)
        if found and found["status"] == status and (reason is None or found["reason"] == reason):
            return found
        return None

    return check


WITH_SECRETS = {
    "replicas": 2,
    "database": {"urlSecretRef": {"name": "db", "key": "url"}},
    "auth": {"apiKeysSecretRef": {"name": "keys"}},
}


async def test_create_applies_every_child_with_owner_labels_probes_and_secret_env(k8s, operator, operator_settings):
    await k8s.create(SECRETS, secret("db", url="postgresql://u:p@db/ocr"))
    await k8s.create(SECRETS, secret("keys", **{"api-keys": "k1"}))
    await k8s.create_cr(
        "alpha",
        {
            **WITH_SECRETS,
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4},
            "podDisruptionBudget": {"minAvailable": 1},
        },
    )
    deployment = await eventually(lambda: k8s.stored(DEPLOYMENTS, "alpha"))
    cr = k8s.cr("alpha")
    owner = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "name": "alpha",
        "uid": cr["metadata"]["uid"],
        "controller": True,
    }

    children = [
        await eventually(lambda r=r, n=n: k8s.stored(r, n))
        for r, n in (
            (CONFIG_MAPS, "alpha-config"),
            (SERVICES, "alpha"),
            (DEPLOYMENTS, "alpha"),
            (HORIZONTAL_POD_AUTOSCALERS, "alpha"),
            (POD_DISRUPTION_BUDGETS, "alpha"),
        )
    ]
    for child in children:
        metadata = child["metadata"]
        assert any(owner.items() <= ref.items() for ref in metadata["ownerReferences"]), metadata
        assert metadata["labels"][constants.LABEL_INSTANCE] == "alpha"
        assert metadata["labels"][constants.LABEL_MANAGED_BY] == constants.OPERATOR_NAME
        assert APPLIED_HASH_ANNOTATION in metadata["annotations"]

    main = container(deployment)
    assert main["image"] == operator_settings.default_image  # the operator's default image: the CR names none
    assert main["livenessProbe"]["httpGet"]["path"] == LIVENESS_PATH
    assert main["readinessProbe"]["httpGet"]["path"] == READINESS_PATH
    assert "startupProbe" in main
    assert {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"} in main["ports"]
    env = {item["name"]: item for item in main["env"]}
    assert env[EnvVar.DATABASE_URL]["valueFrom"]["secretKeyRef"] == {"name": "db", "key": "url"}
    assert env["OMP_THREAD_LIMIT"]["value"] == "1"
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    configmap = k8s.stored(CONFIG_MAPS, "alpha-config")
    assert "postgresql://" not in str(configmap) and "postgresql://" not in str(k8s.cr("alpha"))
    service = k8s.stored(SERVICES, "alpha")
    assert service["spec"]["ports"][0]["name"] == "http"

    status = await eventually(lambda: (k8s.cr("alpha") or {}).get("status"))
    assert status["url"] == f"http://alpha.{k8s.namespace}.svc:80"
    assert status["selector"] == (
        "app.kubernetes.io/component=server,app.kubernetes.io/instance=alpha,app.kubernetes.io/name=catalyst-ocr"
    )
    created = await eventually(lambda: [e for e in k8s.events("alpha") if e["reason"] == "Created"])
    assert created[0]["type"] == "Normal" and "Deployment alpha" in created[0]["message"]
    assert not any("kopf.zalando.org" in key for key in (k8s.cr("alpha")["metadata"].get("annotations") or {}))
    assert "finalizers" not in k8s.cr("alpha")["metadata"]  # deleting it never waits for the operator
    # A new resource owns nothing yet: its children were applied without reading them first.
    await k8s.settle()
    child_paths = [p.object_path(k8s.namespace, "alpha") for p in (SERVICES, DEPLOYMENTS, HORIZONTAL_POD_AUTOSCALERS)]
    assert not [r for r in k8s.requests() if r.method.value == "GET" and r.url.path in child_paths]


async def test_seeded_deployment_status_makes_the_resource_ready_with_current_generation(k8s, operator):
    await k8s.create_cr("ready")
    deployment = await eventually(lambda: k8s.stored(DEPLOYMENTS, "ready"))
    await eventually(condition_is(k8s, "ready", "Ready", "False"))
    generation = deployment["metadata"]["generation"]
    await k8s.patch(
        DEPLOYMENTS,
        "ready",
        {
            "status": {
                "observedGeneration": generation,
                "replicas": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
            }
        },
        subresource="status",
    )
    ready = await eventually(condition_is(k8s, "ready", "Ready", "True", "Available"))
    cr = k8s.cr("ready")
    assert ready["observedGeneration"] == cr["metadata"]["generation"] == cr["status"]["observedGeneration"]
    assert cr["status"]["readyReplicas"] == 1
    assert condition(cr, "Progressing")["status"] == "False"
    assert condition(cr, "Degraded")["status"] == "False"

    # A spec change: the Deployment gets a new generation; until its controller observes it, not Ready.
    await k8s.patch(OCR_DEPLOYMENTS, "ready", {"spec": {"replicas": 2}})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "ready")["spec"].get("replicas") == 2)
    progressing = await eventually(condition_is(k8s, "ready", "Progressing", "True", "RolloutInProgress"))
    assert progressing["observedGeneration"] == k8s.cr("ready")["metadata"]["generation"] == 2


async def test_spec_update_updates_children_and_rolls_the_pods(k8s, operator):
    await k8s.create_cr("beta", {"replicas": 1, "ocr": {"psm": 3}})
    before = await eventually(lambda: config_hash(k8s.stored(DEPLOYMENTS, "beta")))
    await k8s.patch(OCR_DEPLOYMENTS, "beta", {"spec": {"replicas": 3, "ocr": {"psm": 6}}})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "beta")["spec"].get("replicas") == 3)
    after = await eventually(lambda: (h := config_hash(k8s.stored(DEPLOYMENTS, "beta"))) != before and h)
    assert after != before
    assert k8s.stored(CONFIG_MAPS, "beta-config")["data"][EnvVar.DEFAULT_PSM] == "6"
    updated = await eventually(lambda: [e for e in k8s.events("beta") if e["reason"] == "Updated"])
    assert "Deployment beta" in updated[-1]["message"]


async def test_secret_rotation_changes_the_pod_template_hash(k8s, operator):
    await k8s.create(SECRETS, secret("db", url="postgresql://one"))
    await k8s.create_cr("gamma", {"database": {"urlSecretRef": {"name": "db", "key": "url"}}})
    before = await eventually(lambda: config_hash(k8s.stored(DEPLOYMENTS, "gamma")))
    rotated = base64.b64encode(b"postgresql://two").decode()
    await k8s.patch(SECRETS, "db", {"data": {"url": rotated}})
    await eventually(lambda: config_hash(k8s.stored(DEPLOYMENTS, "gamma")) != before)


async def test_deleted_child_is_restored(k8s, operator):
    await k8s.create_cr("delta")
    original = await eventually(lambda: k8s.stored(SERVICES, "delta"))
    await k8s.delete(SERVICES, "delta")
    restored = await eventually(lambda: k8s.stored(SERVICES, "delta"))
    assert restored["spec"] == original["spec"]
    assert restored["metadata"]["uid"] != original["metadata"]["uid"]


async def test_hand_edited_child_is_restored(k8s, operator):
    await k8s.create_cr("epsilon", {"replicas": 2})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "epsilon"))
    await k8s.patch(DEPLOYMENTS, "epsilon", {"spec": {"replicas": 7}})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "epsilon")["spec"]["replicas"] == 2)
    await k8s.patch(CONFIG_MAPS, "epsilon-config", {"data": {EnvVar.DEFAULT_PSM: "13"}})
    await eventually(lambda: k8s.stored(CONFIG_MAPS, "epsilon-config")["data"][EnvVar.DEFAULT_PSM] != "13")


async def test_disabling_autoscaling_deletes_the_hpa_and_gives_replicas_back(k8s, operator):
    await k8s.create_cr("zeta", {"replicas": 2, "autoscaling": {"enabled": True}})
    await eventually(lambda: k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "zeta"))
    await k8s.patch(OCR_DEPLOYMENTS, "zeta", {"spec": {"autoscaling": {"enabled": False}}})
    await eventually(lambda: k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "zeta") is None)
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "zeta")["spec"].get("replicas") == 2)


@pytest.mark.resync_seconds(3)
async def test_nothing_changed_means_no_write(k8s, operator, runtime, start_operator, resync_seconds):
    await k8s.create(SECRETS, secret("db", url="postgresql://one"))
    await k8s.create_cr("quiet", {"database": {"urlSecretRef": {"name": "db", "key": "url"}}})
    await eventually(lambda: (k8s.cr("quiet") or {}).get("status"))
    await k8s.settle()
    writes_before = len(k8s.writes())
    assert writes_before >= 4  # creating did write: children, status, annotations, Events
    reads_before = len(k8s.requests())

    # The resync path (what the resync loop runs), called directly: children come from the watch cache.
    for _ in range(2):
        mark = len(k8s.requests())
        report = await asyncio.to_thread(reconcile, runtime, k8s.namespace, "quiet")
        assert report.applied is not None and not report.applied.written and not report.status_written
        assert not report.events
        paths = sorted(r.url.path for r in k8s.requests()[mark:])
        assert paths == sorted([
            f"/apis/ocr.catalyst.dev/v1alpha1/namespaces/{k8s.namespace}/ocrdeployments/quiet",
            f"/api/v1/namespaces/{k8s.namespace}/secrets/db",
            "/apis/monitoring.coreos.com/v1",  # discovery; cached for a few seconds outside tests
            "/apis/keda.sh/v1alpha1",  # discovery too: a ScaledObject left from jobWorkers would be pruned
        ])  # fmt: skip
    # ...and by the resync loop itself (two periods), a Secret event that changes nothing the pods read,
    # and a restart of the operator (kopf resumes every resource).
    await asyncio.sleep(2 * resync_seconds + 0.5)
    await k8s.patch(SECRETS, "db", {"metadata": {"labels": {"touched": "yes"}}})
    await k8s.settle()
    await asyncio.to_thread(operator.stop)
    await start_operator()
    await k8s.settle()
    assert len(k8s.requests()) > reads_before + 10  # the operator did look
    assert [f"{r.method} {r.url.path}" for r in k8s.writes()[writes_before:]] == []


async def test_no_finalizer_ever_and_deleting_touches_no_child(k8s, operator):
    await k8s.create_cr("omega")
    await eventually(lambda: (k8s.cr("omega") or {}).get("status"))
    await k8s.settle()
    assert "finalizers" not in k8s.cr("omega")["metadata"]
    assert not [r for r in k8s.writes() if "finalizers" in str(r.data)], "no write ever touched finalizers"
    writes_before = len(k8s.writes())
    await k8s.delete(OCR_DEPLOYMENTS, "omega")
    assert k8s.cr("omega") is None  # gone at once: nothing waits for the operator
    await k8s.settle()
    later = [f"{r.method.value} {r.url.path}" for r in k8s.writes()[writes_before:]]
    assert later == [], later  # children are the garbage collector's job; the resync finds it gone


async def test_an_upgraded_operator_strips_the_old_finalizer_even_from_a_terminating_object(k8s, start_operator):
    """What versions with the finalizer left behind: objects carrying it, one already being deleted."""
    for name in ("kept", "doomed"):
        body = k8s.ocr_deployment(name)
        body["metadata"]["finalizers"] = [LEGACY_FINALIZER]
        await k8s.create(OCR_DEPLOYMENTS, body)
    await k8s.delete(OCR_DEPLOYMENTS, "doomed")
    assert k8s.cr("doomed")["metadata"].get("deletionTimestamp"), "Terminating, held by the old finalizer"
    await start_operator()
    await eventually(lambda: k8s.cr("doomed") is None)
    await eventually(lambda: "finalizers" not in (k8s.cr("kept") or {"metadata": {"finalizers": 1}})["metadata"])
    # kopf ends the cycle that strips a finalizer and handles the object on its next event; a real API
    # server sends a MODIFIED event for kopf's own patch; in KMock none reached kopf, so any
    # change stands in for it here.
    await k8s.patch(OCR_DEPLOYMENTS, "kept", {"metadata": {"labels": {"poke": "yes"}}})
    await eventually(lambda: (k8s.cr("kept") or {}).get("status"))  # and it is reconciled as usual
