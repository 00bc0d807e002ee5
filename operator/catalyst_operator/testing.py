"""Run the real operator against an in-memory API server (KMock) — for tests and benchmarks.

Needs the `dev` extra (kmock). Like `kopf.testing`, it ships with the package so that the test
suite and `benchmarks/operator_reconcile.py` drive the operator the same way.

`ClusterEmulator` closes three gaps of kmock 0.8 that a kopf operator trips over (see
`../shared/kmock-notes.md`; `tests/operator/test_kmock_canary.py` notices when kmock fixes them):

1. stored objects get `uid`, `resourceVersion`, `generation` and `creationTimestamp`, and a
   patch that changes nothing is answered without a new version or a watch event;
2. server-side apply of an object that does not exist creates it;
3. `generateName` generates a name.

`OperatorThread` runs kopf in its own thread with its own event loop (running it as a task in
the test's loop breaks teardown: on stop kopf cancels every task created after it started).
"""

from __future__ import annotations

import copy
import datetime
import itertools
import secrets
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp.web
import attrs
import kmock
import kopf

from catalyst_operator import handlers
from catalyst_operator.reconcile import Runtime


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with object metadata stamped the way an API server would."""

    _revisions: Any = attrs.field(factory=lambda: itertools.count(1), init=False)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        resource = request.resource
        if resource is not None and isinstance(request.data, dict):
            if request.action == kmock.action.CREATE:
                request = attrs.evolve(request, data=self._stamp_new(request.data, request.namespace))
            elif request.action == kmock.action.UPDATE and request.name is not None:
                current = await self._current(resource, request.namespace, request.name)
                if current is None and _is_apply(request):
                    data = self._stamp_new(request.data, request.namespace)
                    request = attrs.evolve(request, action=kmock.action.CREATE, data=data)
                elif current is not None:
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
                    request = attrs.evolve(request, data=patch)
        return await super()._handle(request)

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


def _is_apply(request: kmock.Request) -> bool:
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    return content_type.startswith("application/apply-patch")


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
