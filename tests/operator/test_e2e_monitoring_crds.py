"""End to end: installing (or removing) the Prometheus Operator's CRDs is acted on at once.

Cluster-wide, the operator watches the monitoring CRDs: the `catalyst-ocr-operator` process runs
with the resync timer and the discovery cache both set to an hour, so only that watch can flip
MonitoringReady within the bounded wait. Namespaced, it must not watch CRDs at all (its Role
cannot grant them); there the resync timer stands in. The last tests pin the two pieces the
handler relies on: discovery's bounded wait past its cache, and which resources count as outdated.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest
from catalyst_operator.cli import watches_all_namespaces
from catalyst_operator.discovery import ApiDiscovery
from catalyst_operator.resources import CUSTOM_RESOURCE_DEFINITIONS, PROMETHEUS_RULES, SERVICE_MONITORS
from catalyst_operator.testing import (
    apply_monitoring_crds,
    delete_monitoring_crds,
    eventually,
    install_monitoring_crds,
)
from test_e2e_cli import kubeconfig, operator_process
from test_e2e_conditions import MONITORED, has_condition
from test_e2e_rbac import grants, needed, role

pytestmark = pytest.mark.timeout(120)  # each test has its own emulated cluster and operator: no xdist group

HOUR = "3600"
PROMPTLY = 20.0
"""Bound on the reaction (generous for a loaded test machine); the timer and cache would take an hour."""


def operator_requests(k8s) -> list[Any]:
    return [r for r in k8s.requests() if not r.headers.get("User-Agent", "").startswith("kmock/")]


def crd_requests(k8s) -> list[Any]:
    return [r for r in operator_requests(k8s) if CUSTOM_RESOURCE_DEFINITIONS.plural in r.url.path]


async def test_cluster_wide_operator_applies_monitoring_as_soon_as_the_crds_are_established(k8s, cluster, tmp_path):
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig(tmp_path / "config", str(cluster.url).rstrip("/"))),
        "CATALYST_OPERATOR_DEFAULT_IMAGE": "registry.example/ocr:crds",
        "CATALYST_OPERATOR_RESYNC_SECONDS": HOUR,
        "CATALYST_OPERATOR_DISCOVERY_TTL_SECONDS": HOUR,
        "KUBERNETES_SERVICE_HOST": "",  # never mistake the test runner for a pod
    }
    async with operator_process(env, "--metrics-port", "0", "--standalone", "--all-namespaces") as running:
        await k8s.create_cr("late", MONITORED)
        await k8s.create_cr("plain")  # asks for no monitoring: the CRDs change nothing for it
        await eventually(has_condition(k8s, "late", "MonitoringReady", "False", "ServiceMonitorCRDMissing"), within=60)
        await eventually(has_condition(k8s, "plain", "MonitoringReady", "True", "NotRequested"))
        await eventually(lambda: any(r.params.get("watch") == "true" for r in crd_requests(k8s)), within=30)
        await k8s.settle()
        before = len(k8s.requests())

        # Discovery lags the Established condition by a second: the operator waits for it.
        await apply_monitoring_crds(cluster, discovery_lag=1.0)
        await eventually(has_condition(k8s, "late", "MonitoringReady", "True", "Applied"), within=PROMPTLY)
        assert k8s.stored(SERVICE_MONITORS, "late") is not None
        assert k8s.stored(PROMETHEUS_RULES, "late") is not None
        await k8s.settle()
        touched = [r.url.path for r in k8s.requests()[before:] if r.url.path.endswith("/plain")]
        assert touched == [], "a resource that asks for no monitoring is not reconciled"

        await delete_monitoring_crds(cluster)
        await eventually(
            has_condition(k8s, "late", "MonitoringReady", "False", "ServiceMonitorCRDMissing"), within=PROMPTLY
        )
        used = set().union(*(needed(request) for request in operator_requests(k8s)))
        assert ("apiextensions.k8s.io", "customresourcedefinitions", "watch") in used
        assert used - grants(role("ClusterRole")) == set(), "the ClusterRole must allow every request"
    assert running.process.returncode == 0, running.output[-3000:]


@pytest.mark.resync_seconds(3)
async def test_namespaced_operator_never_touches_crds_and_falls_back_to_the_resync_timer(k8s, cluster, operator):
    await k8s.create_cr("late", MONITORED)
    await eventually(has_condition(k8s, "late", "MonitoringReady", "False", "ServiceMonitorCRDMissing"))
    await apply_monitoring_crds(cluster)
    await eventually(has_condition(k8s, "late", "MonitoringReady", "True", "Applied"), within=PROMPTLY)
    assert crd_requests(k8s) == [], "a namespaced operator's Role cannot grant CRDs: it must not ask"
    used = set().union(*(needed(request) for request in operator_requests(k8s)))
    assert used - grants(role("Role")) == set()


@pytest.mark.parametrize(
    ("args", "environ", "cluster_wide"),
    [
        (["--standalone", "--all-namespaces"], {}, True),
        (["-A", "--liveness=http://0.0.0.0:8081/healthz"], {}, True),
        (["--standalone"], {}, True),  # neither flag: kopf's (deprecated) default is cluster-wide
        (["--standalone", "--namespace=catalyst-ocr-system"], {}, False),
        (["-n", "team-a", "-n", "team-b"], {}, False),
        (["-nteam-*"], {}, False),
        (["--standalone"], {"KOPF_RUN_NAMESPACE": "legacy"}, False),
    ],
)
def test_the_crd_watch_follows_kopfs_own_reading_of_the_namespace_flags(args, environ, cluster_wide):
    assert watches_all_namespaces(args, environ) is cluster_wide


async def test_discovery_waits_for_a_change_past_its_cache_and_gives_up_after_the_bound(cluster, runtime):
    discovery = ApiDiscovery(runtime.api, ttl_seconds=3600)
    assert await asyncio.to_thread(discovery.served, SERVICE_MONITORS) is False
    install_monitoring_crds(cluster)
    assert await asyncio.to_thread(discovery.served, SERVICE_MONITORS) is False  # the cached answer
    assert await asyncio.to_thread(discovery.wait_until, SERVICE_MONITORS, served=True, within=5) is True
    assert await asyncio.to_thread(discovery.served, PROMETHEUS_RULES) is True  # the refreshed answer is cached
    started = time.monotonic()
    assert await asyncio.to_thread(discovery.wait_until, SERVICE_MONITORS, served=False, within=0.5) is False
    assert time.monotonic() - started < 5


def test_only_resources_asking_for_monitoring_that_saw_the_other_answer_are_outdated(runtime):
    runtime.record_monitoring("a", "wants-missing", requested=True, available=False)
    runtime.record_monitoring("a", "wants-served", requested=True, available=True)
    runtime.record_monitoring("b", "wants-missing", requested=True, available=False)
    runtime.record_monitoring("a", "no-monitoring", requested=False, available=False)
    assert runtime.monitoring_outdated(True) == [("a", "wants-missing"), ("b", "wants-missing")]
    assert runtime.monitoring_outdated(False) == [("a", "wants-served")]
    runtime.record_monitoring("a", "wants-served", requested=False, available=True)  # monitoring switched off
    runtime.forget("b", "wants-missing")  # deleted
    assert runtime.monitoring_outdated(False) == []
    assert runtime.monitoring_outdated(True) == [("a", "wants-missing")]
    assert runtime.saw_monitoring("a", "wants-missing") is False and runtime.saw_monitoring("a", "x") is None
