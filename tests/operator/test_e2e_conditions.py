"""End to end: the operator's honest conditions and Events for monitoring, bad specs and missing Secrets."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from catalyst_operator.discovery import ApiDiscovery
from catalyst_operator.resources import (
    DEPLOYMENTS,
    OCR_DEPLOYMENTS,
    PROMETHEUS_RULES,
    SECRETS,
    SERVICE_MONITORS,
    SERVICES,
)
from catalyst_operator.testing import eventually, install_monitoring_crds

pytestmark = pytest.mark.timeout(120)  # each test has its own emulated cluster and operator: no xdist group

MONITORED = {"monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}


def condition(cr: dict[str, Any] | None, condition_type: str) -> dict[str, Any]:
    for entry in ((cr or {}).get("status") or {}).get("conditions") or []:
        if entry["type"] == condition_type:
            return entry
    return {}


def has_condition(k8s, name: str, condition_type: str, status: str, reason: str):
    def check() -> dict[str, Any] | None:
        found = condition(k8s.cr(name), condition_type)
        return found if (found.get("status"), found.get("reason")) == (status, reason) else None

    return check


def events(k8s, name: str, reason: str) -> list[dict[str, Any]]:
    return [event for event in k8s.events(name) if event["reason"] == reason]


async def test_missing_monitoring_crds_give_a_condition_and_a_warning_but_everything_else_runs(k8s, operator):
    await k8s.create_cr("mon", MONITORED)
    missing = await eventually(has_condition(k8s, "mon", "MonitoringReady", "False", "ServiceMonitorCRDMissing"))
    assert "monitoring.coreos.com/v1" in missing["message"]
    assert k8s.stored(DEPLOYMENTS, "mon") and k8s.stored(SERVICES, "mon")
    warning = await eventually(lambda: events(k8s, "mon", "ServiceMonitorCRDMissing"))
    assert warning[0]["type"] == "Warning"
    assert k8s.stored(SERVICE_MONITORS, "mon") is None and k8s.stored(PROMETHEUS_RULES, "mon") is None


async def test_monitoring_objects_are_created_when_the_crds_exist(k8s, cluster, start_operator):
    install_monitoring_crds(cluster)
    await start_operator()
    await k8s.create_cr("mon", MONITORED)
    monitor = await eventually(lambda: k8s.stored(SERVICE_MONITORS, "mon"))
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert await eventually(lambda: k8s.stored(PROMETHEUS_RULES, "mon"))
    await eventually(has_condition(k8s, "mon", "MonitoringReady", "True", "Applied"))

    # Switched off: the monitoring objects are deleted, the condition says so.
    await k8s.patch(OCR_DEPLOYMENTS, "mon", {"spec": {"monitoring": {"serviceMonitor": {"enabled": False}}}})
    await eventually(lambda: k8s.stored(SERVICE_MONITORS, "mon") is None)
    assert k8s.stored(PROMETHEUS_RULES, "mon") is not None


@pytest.mark.resync_seconds(3)
async def test_monitoring_objects_appear_on_resync_once_the_crds_are_installed(k8s, cluster, operator):
    await k8s.create_cr("late", MONITORED)
    await eventually(has_condition(k8s, "late", "MonitoringReady", "False", "ServiceMonitorCRDMissing"))
    install_monitoring_crds(cluster)
    monitor = await eventually(lambda: k8s.stored(SERVICE_MONITORS, "late"), within=20)
    await eventually(has_condition(k8s, "late", "MonitoringReady", "True", "Applied"))
    # kopf started before the CRDs existed, so it does not watch ServiceMonitors: a hand edit is
    # still undone by the resync, which reads kinds it has no watch for.
    await k8s.patch(SERVICE_MONITORS, "late", {"spec": {"endpoints": [{"port": "wrong"}]}})
    await eventually(lambda: k8s.stored(SERVICE_MONITORS, "late")["spec"] == monitor["spec"], within=20)


@pytest.mark.resync_seconds(3)
async def test_invalid_spec_sets_conditions_posts_a_warning_and_does_not_retry(k8s, operator, resync_seconds):
    await k8s.create_cr("bad", {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}})
    degraded = await eventually(has_condition(k8s, "bad", "Degraded", "True", "InvalidSpec"))
    assert "spec.autoscaling.minReplicas" in degraded["message"]
    assert condition(k8s.cr("bad"), "Ready")["status"] == "False"
    warning = await eventually(lambda: events(k8s, "bad", "InvalidSpec"))
    assert warning[0]["type"] == "Warning" and "minReplicas" in warning[0]["message"]
    assert k8s.stored(DEPLOYMENTS, "bad") is None

    # No retry loop: over two resync periods, no further writes and no further Warning.
    await k8s.settle()
    writes = len(k8s.writes())
    await asyncio.sleep(2 * resync_seconds)
    await k8s.settle()
    assert len(k8s.writes()) == writes
    assert len(events(k8s, "bad", "InvalidSpec")) == 1

    # Fixing the spec heals it.
    await k8s.patch(OCR_DEPLOYMENTS, "bad", {"spec": {"autoscaling": {"maxReplicas": 6}}})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "bad"))
    await eventually(has_condition(k8s, "bad", "Degraded", "False", "AsExpected"))


async def test_missing_secret_degrades_then_rolls_out_once_the_secret_appears(k8s, operator):
    await k8s.create_cr("wait", {"database": {"urlSecretRef": {"name": "db", "key": "url"}}})
    degraded = await eventually(has_condition(k8s, "wait", "Degraded", "True", "SecretNotFound"))
    assert f"Secret {k8s.namespace}/db" in degraded["message"] and "'url'" in degraded["message"]
    assert condition(k8s.cr("wait"), "Ready")["reason"] == "SecretNotFound"
    warning = await eventually(lambda: events(k8s, "wait", "SecretNotFound"))
    assert warning[0]["type"] == "Warning"
    assert k8s.stored(DEPLOYMENTS, "wait") is None

    # The Secret exists but lacks the key: still degraded, and the message says which key.
    await k8s.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"x": "eA=="}})
    no_key = await eventually(
        lambda: (
            "has no key" in condition(k8s.cr("wait"), "Degraded").get("message", "")
            and condition(k8s.cr("wait"), "Degraded")
        )
    )
    assert no_key["status"] == "True"

    await k8s.patch(SECRETS, "db", {"data": {"url": base64.b64encode(b"postgresql://db/ocr").decode()}})
    await eventually(lambda: k8s.stored(DEPLOYMENTS, "wait"))
    # Reconciled from the Secret's watch event — and its Events are posted from there too.
    created = await eventually(lambda: events(k8s, "wait", "Created"))
    assert "Deployment wait" in created[0]["message"]
    await eventually(has_condition(k8s, "wait", "Degraded", "False", "AsExpected"))
    secret_values = "postgresql://db/ocr"
    assert secret_values not in str(k8s.cr("wait")) and all(secret_values not in str(e) for e in k8s.events())


async def test_a_deleted_secret_degrades_but_keeps_the_running_deployment(k8s, operator):
    url = base64.b64encode(b"postgresql://db/ocr").decode()
    await k8s.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"url": url}})
    await k8s.create_cr("kept", {"database": {"urlSecretRef": {"name": "db", "key": "url"}}})
    deployment = await eventually(lambda: k8s.stored(DEPLOYMENTS, "kept"))
    await k8s.delete(SECRETS, "db")
    await eventually(has_condition(k8s, "kept", "Degraded", "True", "SecretNotFound"))
    assert k8s.stored(DEPLOYMENTS, "kept")["metadata"]["uid"] == deployment["metadata"]["uid"]


async def test_discovery_answers_are_cached_for_their_ttl_then_refreshed(cluster, runtime):
    now = [0.0]
    discovery = ApiDiscovery(runtime.api, ttl_seconds=10.0, clock=lambda: now[0])
    assert await asyncio.to_thread(discovery.monitoring_available) is False
    install_monitoring_crds(cluster)
    now[0] = 9.0
    assert await asyncio.to_thread(discovery.monitoring_available) is False  # still the cached answer
    now[0] = 10.5
    assert await asyncio.to_thread(discovery.monitoring_available) is True
    assert await asyncio.to_thread(discovery.served, SERVICE_MONITORS) is True
