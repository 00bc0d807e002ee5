"""Run the real operator against an in-memory API server (KMock) — for tests and benchmarks.

Needs the `dev` extra (kmock). Like `kopf.testing`, it ships with the package so that the test
suite and `benchmarks/operator_reconcile.py` drive the operator the same way.

`ClusterEmulator` closes three gaps of kmock 0.8 that a kopf operator trips over (see
`../shared/kmock-notes.md`; `tests/operator/test_kmock_canary.py` notices when kmock fixes them):

1. stored objects get `uid`, `resourceVersion`, `generation` and `creationTimestamp`, and a
   patch that changes nothing is answered without a new version or a watch event;
2. server-side apply of an object that does not exist creates it;
3. `generateName` generates a name.

Every request is first checked on the wire as a real API server would (`catalyst_operator.wire`:
integer and boolean query parameters, `resourceVersion`, patch content types, `fieldManager`); a
violation is answered with the real server's status code and kept in `wire_violations`, which the
tests' `cluster` fixture asserts empty.

It also keeps kmock's request routing linear: kmock scans its whole request log for every new
request, which made a 200-resource benchmark measure kmock instead of the operator.

`OperatorThread` runs kopf in its own thread with its own event loop (running it as a task in
the test's loop breaks teardown: on stop kopf cancels every task created after it started).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import kopf

from catalyst_operator import constants, handlers, wire
from catalyst_operator.resources import (
    CUSTOM_RESOURCE_DEFINITIONS,
    MONITORING_RESOURCES,
    OCR_DEPLOYMENTS,
    ApiResource,
)
from catalyst_operator.runtime import Runtime

WRITE_METHODS: Final = ("POST", "PUT", "PATCH", "DELETE")
TEST_CLIENT_AGENT_PREFIX: Final = "kmock/"
"""kmock's own client (what tests drive the cluster with) announces itself so; the operator does not."""


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with object metadata stamped the way an API server would."""

    _revisions: Any = attrs.field(factory=lambda: itertools.count(1), init=False)
    _log: list[kmock.Request] = attrs.field(factory=list, init=False)
    _in_flight: list[kmock.Request] = attrs.field(factory=list, init=False)
    wire_violations: list[str] = attrs.field(factory=list, init=False)
    """Requests a real API server would have refused ("METHOD path: message"), in arrival order."""

    def history(self) -> list[kmock.Request]:
        """Every request received, in arrival order (rewritten ones in the form that was served)."""
        return list(self._log)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Runs synchronously up to the first await right after kmock logged the request: no gap.
        position = len(self._log)
        self._log.append(request)
        self._in_flight.append(request)
        try:
            refused = self._refuse_like_an_api_server(request)
            if refused is not None:
                return refused
            served = await self._rewrite(request)
            if isinstance(served, aiohttp.web.StreamResponse):
                return served
            self._log[position] = served
            self._keep_only_in_flight(request, served)
            return await super()._handle(served)
        finally:
            self._in_flight[:] = [r for r in self._in_flight if r is not request]

    async def _serve_list(self, request: kmock.Request) -> Any:
        """kmock answers a LIST with `resourceVersion: "..."`, which kopf sends back on its watch:
        a real server's is a number (and it refuses anything else), so give it one."""
        answer = await super()._serve_list(request)
        if isinstance(answer, dict):
            answer = {
                **answer,
                "metadata": {**answer.get("metadata", {}), "resourceVersion": str(next(self._revisions))},
            }
        return answer

    def _refuse_like_an_api_server(self, request: kmock.Request) -> aiohttp.web.StreamResponse | None:
        """Answer what a real API server refuses as it would (the client sees the error), and note it."""
        group = request.resource.group if request.resource is not None else None
        found = wire.violation(
            _method(request),
            {str(key): str(value) for key, value in request.params.items()},
            _header(request, "Content-Type"),
            group,
            is_watch_or_list=request.action in (kmock.action.LIST, kmock.action.WATCH),
        )
        if found is None:
            return None
        self.wire_violations.append(f"{_method(request)} {request.url.path_qs}: {found.message}")
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        body = {**status, "message": found.message, "reason": found.reason, "code": found.status}
        return aiohttp.web.json_response(body, status=found.status)

    def _keep_only_in_flight(self, original: kmock.Request, served: kmock.Request) -> None:
        """Trim kmock's own log to the requests still being served, the rewritten one in place.

        kmock routes a request only if it is in its log, and finds it there by a linear scan — over
        the whole history, which made a test or a benchmark quadratic. Requests in flight (long
        watches included) stay, so their routing never misses; `history()` keeps everything.
        """
        kept = [r for r in self._requests if any(r is f for f in self._in_flight)]
        self._requests[:] = [served if r is original else r for r in kept]
        if not any(r is served for r in self._requests):
            self._requests.append(served)

    async def _rewrite(self, request: kmock.Request) -> kmock.Request | aiohttp.web.StreamResponse:
        """Stamp metadata, turn an apply of a missing object into a create, answer no-op patches."""
        resource = request.resource
        if resource is not None and isinstance(request.data, list) and request.name is not None:
            return await self._rewrite_json_patch(request, resource)
        if resource is None or not isinstance(request.data, dict):
            return request
        if request.action == kmock.action.CREATE:
            return attrs.evolve(request, data=self._stamp_new(request.data, request.namespace))
        if request.action != kmock.action.UPDATE or request.name is None:
            return request
        current = await self._current(resource, request.namespace, request.name)
        if current is None:
            if _is_apply(request):
                data = self._stamp_new(request.data, request.namespace)
                return attrs.evolve(request, action=kmock.action.CREATE, data=data)
            return request
        patch = request.data
        if request.subresource == "status":
            patch = {"status": patch.get("status")}
        merged = merge_patch(current, patch)
        if _comparable(merged) == _comparable(current):
            return aiohttp.web.json_response(current)
        patch = copy.deepcopy(patch)
        stamps = patch.setdefault("metadata", {}) if isinstance(patch.get("metadata"), dict | None) else {}
        stamps["resourceVersion"] = str(next(self._revisions))
        if _spec_part(merged) != _spec_part(current):
            stamps["generation"] = int((current.get("metadata") or {}).get("generation") or 1) + 1
        patch["metadata"] = stamps
        return attrs.evolve(request, data=patch)

    async def _rewrite_json_patch(
        self, request: kmock.Request, resource: kmock.resource
    ) -> kmock.Request | aiohttp.web.StreamResponse:
        """A JSON patch gets a new resourceVersion too (kopf guards its patches with a `test` op on it),
        and a failing `test` or `remove` is the real server's 422, not an emulator crash."""
        current = await self._current(resource, request.namespace, str(request.name))
        if current is None:
            return request
        try:
            patched = jsonpatch.apply_patch(copy.deepcopy(current), request.data)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
            return aiohttp.web.json_response(
                {**status, "message": str(error), "reason": "Invalid", "code": 422}, status=422
            )
        if _comparable(patched) == _comparable(current):
            return aiohttp.web.json_response(current)
        stamps: list[dict[str, Any]] = [
            {"op": "add", "path": "/metadata/resourceVersion", "value": str(next(self._revisions))}
        ]
        if _spec_part(patched) != _spec_part(current):
            generation = int((current.get("metadata") or {}).get("generation") or 1) + 1
            stamps.append({"op": "add", "path": "/metadata/generation", "value": generation})
        return attrs.evolve(request, data=[*request.data, *stamps])

    async def _current(self, resource: kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (resource, namespace, name)
        async with self._lock:
            if key in self._objects and not self._objects[key].deleted:
                return self._objects[key].raw
        return None

    def _stamp_new(self, data: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        stamped = copy.deepcopy(data)
        metadata = stamped.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = f"{metadata['generateName']}{secrets.token_hex(3)}"
        if namespace and not metadata.get("namespace"):
            metadata["namespace"] = namespace
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata["resourceVersion"] = str(next(self._revisions))
        metadata["generation"] = 1
        metadata.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat())
        return stamped


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what kmock applies for every PATCH)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _method(request: kmock.Request) -> str:
    return str(getattr(request.method, "value", request.method)).upper()


def _header(request: kmock.Request, name: str) -> str:
    return next((value for key, value in request.headers.items() if key.lower() == name.lower()), "")


def _is_apply(request: kmock.Request) -> bool:
    return _header(request, "Content-Type").startswith("application/apply-patch")


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    clean = copy.deepcopy(obj)
    metadata = clean.get("metadata") or {}
    metadata.pop("resourceVersion", None)
    metadata.pop("managedFields", None)
    return clean


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    """What bumps `metadata.generation`: everything but metadata and status."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


class OperatorThread:
    """The operator's real kopf handlers, running in a background thread until `stop()`."""

    def __init__(self, runtime: Runtime, namespaces: Sequence[str]) -> None:
        self.runtime = runtime
        self.namespaces = list(namespaces)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kopf-operator", daemon=True)
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> OperatorThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"the operator did not start within {timeout}s: {self.error!r}")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the operator did not stop within {timeout}s")

    def __enter__(self) -> OperatorThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        settings = kopf.OperatorSettings()
        settings.scanning.disabled = True  # kmock answers GET /api/v1/namespaces with 500
        try:
            kopf.run(
                registry=kopf.get_default_registry(),
                settings=settings,
                standalone=True,
                namespaces=self.namespaces,
                stop_flag=self._stop,
                ready_flag=self._ready,
                memo=kopf.Memo({handlers.RUNTIME_KEY: self.runtime}),
            )
        except BaseException as error:  # surfaced by start()/the test, never swallowed silently
            self.error = error
            raise


def register_crd(cluster: kmock.KubernetesEmulator) -> None:
    """What installing `manifests/crds/` does to discovery."""
    cluster.resources[f"{constants.API_VERSION}/{constants.PLURAL}"] = kmock.ResourceInfo(
        kind=constants.KIND,
        singular=constants.SINGULAR,
        namespaced=True,
        shortnames={constants.SHORT_NAME},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        subresources={"status", "scale"},
    )


def install_monitoring_crds(
    cluster: kmock.KubernetesEmulator, resources: Sequence[ApiResource] = MONITORING_RESOURCES
) -> None:
    """What installing the Prometheus Operator's CRDs (or KEDA's: `resources=KEDA_RESOURCES`) does to discovery."""
    for resource in resources:
        cluster.resources[f"{resource.api_version}/{resource.plural}"] = kmock.ResourceInfo(
            kind=resource.kind,
            singular=resource.kind.lower(),
            namespaced=True,
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        )


def crd_manifest(resource: ApiResource) -> dict[str, Any]:
    """A minimal CustomResourceDefinition serving `resource` (what a CRD bundle's entry boils down to)."""
    return {
        "apiVersion": CUSTOM_RESOURCE_DEFINITIONS.api_version,
        "kind": CUSTOM_RESOURCE_DEFINITIONS.kind,
        "metadata": {"name": resource.crd_name},
        "spec": {
            "group": resource.group,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
            },
            "scope": "Namespaced" if resource.namespaced else "Cluster",
            "versions": [
                {
                    "name": resource.version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


ESTABLISHED: Final = {
    "status": {
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "accepted"},
        ]
    }
}


async def apply_monitoring_crds(
    cluster: kmock.KubernetesEmulator,
    discovery_lag: float = 0.0,
    resources: Sequence[ApiResource] = MONITORING_RESOURCES,
) -> None:
    """What `kubectl apply` of the Prometheus Operator's CRDs does, over HTTP so watchers see it.

    As on a real API server: each CRD object appears (ADDED, not yet Established), discovery starts
    serving its resource, then the CRD turns Established (MODIFIED). With `discovery_lag`, discovery
    follows the Established condition only that many seconds later (an API server under load).
    `resources=KEDA_RESOURCES` installs KEDA's CRDs the same way.
    """
    for resource in resources:
        collection = CUSTOM_RESOURCE_DEFINITIONS.collection_path(None)
        async with cluster.post(collection, json=crd_manifest(resource)) as response:
            assert response.status < 300, await response.text()
    if not discovery_lag:
        install_monitoring_crds(cluster, resources)
    headers = {"Content-Type": "application/merge-patch+json"}
    for resource in resources:
        path = CUSTOM_RESOURCE_DEFINITIONS.object_path(None, resource.crd_name, "status")
        async with cluster.patch(path, json=ESTABLISHED, headers=headers) as response:
            assert response.status < 300, await response.text()
    if discovery_lag:
        await asyncio.sleep(discovery_lag)
        install_monitoring_crds(cluster, resources)


async def delete_monitoring_crds(
    cluster: kmock.KubernetesEmulator, resources: Sequence[ApiResource] = MONITORING_RESOURCES
) -> None:
    """What `kubectl delete` of the Prometheus Operator's CRDs does: their objects go, then the CRDs.

    kmock keeps serving a resource in discovery while any object of it is stored, even a deleted
    one (gap 10 in `tests/operator/test_kmock_canary.py`): the deleted objects are dropped from
    its store too, after their DELETED watch events went out.
    """
    for resource in resources:
        key = kmock.resource(resource.group, resource.version, resource.plural)
        instances = [(namespace, name) for (kind, namespace, name) in list(cluster.objects.keys()) if kind == key]
        for namespace, name in instances:
            if not cluster.objects[(key, namespace, name)].deleted:
                async with cluster.delete(resource.object_path(namespace, name)) as response:
                    assert response.status < 300, await response.text()
            del cluster.objects[(key, namespace, name)]
        del cluster.resources[f"{resource.api_version}/{resource.plural}"]
        async with cluster.delete(CUSTOM_RESOURCE_DEFINITIONS.object_path(None, resource.crd_name)) as response:
            assert response.status < 300, await response.text()


async def eventually(check: Callable[[], Any], within: float = 30.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (and return it), or fail after `within` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s; last value: {last!r}")


class Harness:
    """Drive and inspect an emulated cluster in one namespace, over HTTP like any client would."""

    def __init__(self, cluster: kmock.KubernetesEmulator, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def stored(self, resource: ApiResource, name: str) -> dict[str, Any] | None:
        """The object as the API server holds it now, or None."""
        index = (kmock.resource(resource.group, resource.version, resource.plural), self.namespace, name)
        if index not in self.cluster.objects or self.cluster.objects[index].deleted:
            return None
        return self.cluster.objects[index].raw

    def requests(self) -> list[kmock.Request]:
        """Every request the API server received so far, oldest first."""
        if isinstance(self.cluster, ClusterEmulator):
            return self.cluster.history()
        return list(self.cluster)

    def writes(self) -> list[kmock.Request]:
        """Every write the operator (not the test's own client) sent so far; reads and watches excluded."""
        return [
            request
            for request in self.requests()
            if _method(request) in WRITE_METHODS
            and not _header(request, "User-Agent").startswith(TEST_CLIENT_AGENT_PREFIX)
        ]

    def events(self, involved: str | None = None) -> list[dict[str, Any]]:
        """Kubernetes Events stored so far, oldest first, optionally only those about object `involved`."""
        found = []
        for (resource, namespace, _), obj in self.cluster.objects.items():
            if resource == kmock.resource("", "v1", "events") and namespace == self.namespace and not obj.deleted:
                event = obj.raw
                if involved is None or (event.get("involvedObject") or {}).get("name") == involved:
                    found.append(event)
        return sorted(found, key=lambda event: str(event.get("eventTime") or ""))

    async def settle(self, quiet: float = 1.5, within: float = 60.0) -> None:
        """Wait until no request has arrived for `quiet` seconds: the operator is idle."""
        deadline = time.monotonic() + within
        count = len(self.requests())
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            now_count = len(self.requests())
            if now_count != count:
                count, quiet_since = now_count, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                return
        raise AssertionError(f"the operator kept talking to the API server for {within}s")

    async def create(self, resource: ApiResource, body: dict[str, Any]) -> None:
        async with self.cluster.post(resource.collection_path(self.namespace), json=body) as response:
            assert response.status < 300, await response.text()

    async def patch(
        self, resource: ApiResource, name: str, body: dict[str, Any], subresource: str | None = None
    ) -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        path = resource.object_path(self.namespace, name, subresource)
        async with self.cluster.patch(path, json=body, headers=headers) as response:
            assert response.status < 300, await response.text()

    async def delete(self, resource: ApiResource, name: str) -> None:
        async with self.cluster.delete(resource.object_path(self.namespace, name)) as response:
            assert response.status < 300, await response.text()

    def ocr_deployment(self, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec if spec is not None else {"replicas": 1},
        }

    async def create_cr(self, name: str, spec: dict[str, Any] | None = None) -> None:
        await self.create(OCR_DEPLOYMENTS, self.ocr_deployment(name, spec))

    def cr(self, name: str) -> dict[str, Any] | None:
        return self.stored(OCR_DEPLOYMENTS, name)
