"""Canary: the kmock gaps the operator's test harness works around are still there.

When a kmock upgrade makes one of these fail, the gap is fixed upstream: remove the matching
workaround from `catalyst_operator.testing.ClusterEmulator` (or the test setting) and this check.
The second half checks that `ClusterEmulator` really closes gaps 1-3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import kmock
import pytest
from catalyst_operator.resources import CONFIG_MAPS
from catalyst_operator.testing import ClusterEmulator

NS = "canary"
CM_PATH = CONFIG_MAPS.collection_path(NS)


def configmap(name: str, **metadata: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **metadata}, "data": {"a": "1"}}


@pytest.fixture
async def plain() -> AsyncIterator[kmock.KubernetesEmulator]:
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator):
        emulator.resources.load_bundled()
        yield emulator


@pytest.fixture
async def fixed() -> AsyncIterator[ClusterEmulator]:
    async with ClusterEmulator() as emulator, kmock.Server(emulator):
        emulator.resources.load_bundled()
        yield emulator


async def post(emulator: kmock.RawHandler, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    async with emulator.post(CM_PATH, json=body) as response:
        return response.status, await response.json()


async def merge_patch(emulator: kmock.RawHandler, name: str, body: dict[str, object]) -> dict[str, object]:
    headers = {"Content-Type": "application/merge-patch+json"}
    async with emulator.patch(f"{CM_PATH}/{name}", json=body, headers=headers) as response:
        assert response.status == 200
        return await response.json()


async def apply(emulator: kmock.RawHandler, name: str) -> int:
    headers = {"Content-Type": "application/apply-patch+yaml"}
    params = {"fieldManager": "canary", "force": "true"}
    async with emulator.patch(f"{CM_PATH}/{name}", json=configmap(name), headers=headers, params=params) as response:
        return response.status


def history_length(emulator: kmock.KubernetesEmulator, name: str) -> int:
    return len(emulator.objects[kmock.resource("", "v1", "configmaps"), NS, name].history)


async def test_gap1_no_metadata_stamps_and_noop_patches_make_versions(plain: kmock.KubernetesEmulator) -> None:
    status, created = await post(plain, configmap("one"))
    assert status == 200  # gap 9: POST answers 200, not 201
    assert not {"uid", "resourceVersion", "generation", "creationTimestamp"} & set(created["metadata"])
    await merge_patch(plain, "one", {"data": {"a": "1"}})
    assert history_length(plain, "one") == 2  # an identical patch still made a new version


async def test_gap2_apply_of_a_missing_object_is_404(plain: kmock.KubernetesEmulator) -> None:
    assert await apply(plain, "absent") == 404


async def test_gap3_generate_name_is_ignored(plain: kmock.KubernetesEmulator) -> None:
    _, created = await post(plain, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}})
    assert created["metadata"].get("name") is None
    status, _ = await post(plain, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}})
    assert status == 409  # both are stored under the name None


async def test_gap4_label_selector_is_ignored_on_list(plain: kmock.KubernetesEmulator) -> None:
    await post(plain, configmap("labelled", labels={"team": "a"}))
    await post(plain, configmap("unlabelled"))
    async with plain.get(CM_PATH, params={"labelSelector": "team=a"}) as response:
        names = {item["metadata"]["name"] for item in (await response.json())["items"]}
    assert names == {"labelled", "unlabelled"}


async def test_gap5_listing_namespaces_fails(plain: kmock.KubernetesEmulator) -> None:
    async with plain.get("/api/v1/namespaces") as response:
        assert response.status == 500


async def test_gap6_put_is_not_served(plain: kmock.KubernetesEmulator) -> None:
    await post(plain, configmap("replaced"))
    async with plain.put(f"{CM_PATH}/replaced", json=configmap("replaced")) as response:
        assert response.status == 404


async def test_gap8_no_cascading_delete(plain: kmock.KubernetesEmulator) -> None:
    await post(plain, configmap("owner", uid="owner-uid"))
    await post(plain, configmap("child", ownerReferences=[{"kind": "ConfigMap", "name": "owner", "uid": "owner-uid"}]))
    async with plain.delete(f"{CM_PATH}/owner") as response:
        assert response.status == 200
    async with plain.get(f"{CM_PATH}/child") as response:
        assert response.status == 200


async def test_gap10_a_resource_stays_discoverable_while_deleted_objects_of_it_are_stored(
    plain: kmock.KubernetesEmulator,
) -> None:
    """`testing.delete_monitoring_crds` drops deleted objects from the store for this."""
    plain.resources["example.dev/v1/widgets"] = kmock.ResourceInfo(kind="Widget", singular="widget", namespaced=True)
    widget = {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}}
    async with plain.post(f"/apis/example.dev/v1/namespaces/{NS}/widgets", json=widget) as response:
        assert response.status < 300
    async with plain.delete(f"/apis/example.dev/v1/namespaces/{NS}/widgets/w") as response:
        assert response.status < 300
    del plain.resources["example.dev/v1/widgets"]
    async with plain.get("/apis/example.dev/v1") as response:
        assert response.status == 200  # a real API server: 404 once the CRD is gone
        assert [r["name"] for r in (await response.json())["resources"]] == ["widgets"]


async def test_cluster_emulator_stamps_metadata_and_skips_noop_patches(fixed: ClusterEmulator) -> None:
    _, created = await post(fixed, configmap("one"))
    metadata = created["metadata"]
    assert metadata["uid"] and metadata["resourceVersion"] and metadata["creationTimestamp"]
    unchanged = await merge_patch(fixed, "one", {"data": {"a": "1"}})
    assert unchanged["metadata"]["resourceVersion"] == metadata["resourceVersion"]
    assert history_length(fixed, "one") == 1
    changed = await merge_patch(fixed, "one", {"data": {"a": "2"}})
    assert changed["metadata"]["resourceVersion"] != metadata["resourceVersion"]
    assert changed["metadata"]["generation"] == 2  # data is outside metadata/status: a new generation
    assert changed["metadata"]["uid"] == metadata["uid"]


async def test_cluster_emulator_creates_on_apply_and_generates_names(fixed: ClusterEmulator) -> None:
    assert await apply(fixed, "applied") == 200
    assert fixed.objects[kmock.resource("", "v1", "configmaps"), NS, "applied"]["data"] == {"a": "1"}
    names = set()
    for _ in range(2):
        status, created = await post(
            fixed, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}}
        )
        assert status == 200
        names.add(created["metadata"]["name"])
    assert len(names) == 2 and all(name.startswith("x-") for name in names)
