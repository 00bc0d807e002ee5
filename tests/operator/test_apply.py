"""`apply.apply_children` against the emulated API server: writes only what differs, prunes only what it owns."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import kmock
import kubernetes
import pytest
from catalyst_operator.apply import APPLIED_HASH_ANNOTATION, Action, apply_children, matches
from catalyst_operator.kube import FIELD_MANAGER, KubeApi
from catalyst_operator.resources import CONFIG_MAPS, HORIZONTAL_POD_AUTOSCALERS, SERVICES
from catalyst_operator.testing import ClusterEmulator, Harness

NS = "apply"
OWNER = {"uid": "owner-1", "labels": {"app.kubernetes.io/instance": "x", "app.kubernetes.io/managed-by": "op"}}


def child(kind: str, name: str, owner_uid: str = "owner-1", **body: Any) -> dict[str, Any]:
    api_version = {"ConfigMap": "v1", "Service": "v1", "HorizontalPodAutoscaler": "autoscaling/v2"}[kind]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "labels": dict(OWNER["labels"]),
            "ownerReferences": [{"apiVersion": "x/v1", "kind": "X", "name": "x", "uid": owner_uid}],
        },
        **body,
    }


@pytest.fixture
async def cluster() -> AsyncIterator[ClusterEmulator]:
    async with ClusterEmulator() as emulator, kmock.Server(emulator):
        emulator.resources.load_bundled()
        yield emulator


@pytest.fixture
def api(cluster: ClusterEmulator) -> KubeApi:
    configuration = kubernetes.client.Configuration()
    configuration.host = str(cluster.url).rstrip("/")
    return KubeApi(configuration)


async def run(api: KubeApi, desired: list[dict[str, Any]], prunable=()):
    return await asyncio.to_thread(
        apply_children, api, NS, desired, owner_uid=OWNER["uid"], owner_labels=OWNER["labels"], prunable=prunable
    )


async def test_creates_then_sends_no_write_when_nothing_changed(cluster, api):
    k8s = Harness(cluster, NS)
    desired = [child("ConfigMap", "cm", data={"a": "1"}), child("Service", "svc", spec={"ports": [{"port": 80}]})]
    first = await run(api, desired)
    assert [c.action for c in first.children] == [Action.CREATED, Action.CREATED]
    applies = k8s.writes()
    assert len(applies) == 2
    assert all(r.params == {"fieldManager": FIELD_MANAGER, "force": "true"} for r in applies)
    assert all(r.headers["Content-Type"] == "application/apply-patch+yaml" for r in applies)

    second = await run(api, copy.deepcopy(desired))
    assert [c.action for c in second.children] == [Action.UNCHANGED, Action.UNCHANGED]
    assert len(k8s.writes()) == 2
    assert second.live(SERVICES)["spec"]["ports"] == [{"port": 80}]


async def test_a_changed_or_hand_edited_field_is_applied_again(cluster, api):
    k8s = Harness(cluster, NS)
    await run(api, [child("ConfigMap", "cm", data={"a": "1"})])
    changed = await run(api, [child("ConfigMap", "cm", data={"a": "2"})])
    assert changed.children[0].action is Action.UPDATED
    assert k8s.stored(CONFIG_MAPS, "cm")["data"] == {"a": "2"}
    await k8s.patch(CONFIG_MAPS, "cm", {"data": {"a": "edited"}})
    restored = await run(api, [child("ConfigMap", "cm", data={"a": "2"})])
    assert restored.children[0].action is Action.UPDATED
    assert k8s.stored(CONFIG_MAPS, "cm")["data"] == {"a": "2"}


async def test_the_hash_annotation_changes_with_the_desired_state(cluster, api):
    k8s = Harness(cluster, NS)
    await run(api, [child("ConfigMap", "cm", data={"a": "1"})])
    first = k8s.stored(CONFIG_MAPS, "cm")["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
    await run(api, [child("ConfigMap", "cm", data={"a": "1", "b": "2"})])
    assert k8s.stored(CONFIG_MAPS, "cm")["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] != first


async def test_prunes_only_owned_labelled_children_of_kinds_no_longer_desired(cluster, api):
    k8s = Harness(cluster, NS)
    await k8s.create(HORIZONTAL_POD_AUTOSCALERS, child("HorizontalPodAutoscaler", "mine"))
    await k8s.create(HORIZONTAL_POD_AUTOSCALERS, child("HorizontalPodAutoscaler", "other-owner", owner_uid="owner-2"))
    unlabelled = child("HorizontalPodAutoscaler", "unlabelled")
    unlabelled["metadata"]["labels"] = {}
    await k8s.create(HORIZONTAL_POD_AUTOSCALERS, unlabelled)

    result = await run(api, [child("ConfigMap", "cm")], prunable=[CONFIG_MAPS, HORIZONTAL_POD_AUTOSCALERS])
    assert [(c.resource.kind, c.name, c.action) for c in result.written] == [
        ("ConfigMap", "cm", Action.CREATED),
        ("HorizontalPodAutoscaler", "mine", Action.DELETED),
    ]
    assert k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "mine") is None
    assert k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "other-owner") is not None
    assert k8s.stored(HORIZONTAL_POD_AUTOSCALERS, "unlabelled") is not None


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        ({"a": 1}, {"a": 1, "defaulted": True}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": {"b": 1}}, {"a": {}}, False),
        ([{"port": 80}], [{"port": 80, "protocol": "TCP"}], True),
        ([{"port": 80}], [{"port": 80}, {"port": 81}], False),
        ({"cpu": "0.5"}, {"cpu": "500m"}, True),
        ({"cpu": "1000m"}, {"cpu": "1"}, True),
        ({"memory": "1Gi"}, {"memory": "1073741824"}, True),
        ({"memory": "1G"}, {"memory": "1Gi"}, False),
        ({"flag": True}, {"flag": 1}, False),
        ({"replicas": 2}, {"replicas": "2"}, True),
        ({"nodeSelector": {}, "tolerations": []}, {}, True),
        ({"nodeSelector": {"a": "b"}}, {}, False),
    ],
)
def test_matches_compares_only_our_fields_and_quantities_by_value(desired, live, expected):
    assert matches(desired, live) is expected
