"""What every reconcile in one operator process shares: settings, the API client, caches, locks.

The caches let child watch events be judged cheaply: what was last applied to each child (so the
echo of our own write is not mistaken for drift) and what each Deployment's status looked like
(so its progress updates the custom resource's status). They are rebuilt by reconciles after a
restart — kopf resumes every resource — so losing them costs reads, never correctness.
"""

from __future__ import annotations

import copy
import datetime
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from catalyst_operator import constants
from catalyst_operator.apply import ApplyResult, matches, with_applied_hash
from catalyst_operator.discovery import ApiDiscovery
from catalyst_operator.kube import KubeApi, Manifest
from catalyst_operator.resources import DEPLOYMENTS, SCALED_OBJECTS, ApiResource, resource_for
from catalyst_operator.secrets import SecretReferences
from catalyst_operator.settings import OperatorSettings

STATUS_FOLLOWED: Final = (DEPLOYMENTS, SCALED_OBJECTS)
"""Children whose status changes change the custom resource's status (replicas, AutoscalingReady)."""
JOB_SUFFIX: Final = constants.JOB_WORKERS_SUFFIX

MONITORING: Final = "monitoring"
KEDA: Final = "keda"
"""Optional APIs whose CRDs may come and go while the operator runs."""

ChildKey = tuple[ApiResource, str, str]
"""(resource, namespace, name) of a child object."""


@dataclass
class Runtime:
    """What every reconcile shares: settings, the API, caches. One per operator process."""

    settings: OperatorSettings
    api: KubeApi
    discovery: ApiDiscovery
    secret_refs: SecretReferences = field(default_factory=SecretReferences)
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)
    _desired: dict[ChildKey, Manifest] = field(default_factory=dict)
    _status_seen: dict[ChildKey, str] = field(default_factory=dict)
    """Fingerprints of the children whose status the CR's status follows (Deployments, ScaledObjects)."""
    _live: dict[ChildKey, Manifest] = field(default_factory=dict)
    """Children as last seen in a watch event: lets a quiet resync skip reads."""
    _owned_children: dict[tuple[str, str], frozenset[tuple[ApiResource, str]]] = field(default_factory=dict)
    """(kind, name) of what each resource owned after its last reconcile; unknown after a restart (then: list all)."""
    _last_reconciled: dict[tuple[str, str], float] = field(default_factory=dict)
    _optional_seen: dict[str, dict[tuple[str, str], bool]] = field(default_factory=dict)
    """Per optional API (`MONITORING`, `KEDA`): resources whose spec needs it → whether their last
    reconcile found its CRDs served."""
    monotonic: Callable[[], float] = time.monotonic
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards the caches above: reconciles and event handlers run in several threads."""

    def reconciled(self, namespace: str, name: str) -> None:
        with self._cache_lock:
            self._last_reconciled[(namespace, name)] = self.monotonic()

    def due_for_resync(self, namespace: str, name: str) -> bool:
        """Whether `settings.resync_seconds` passed since the resource was last reconciled (by anything).

        The resync loop only asks; a resource that an event reconciled a moment ago is not re-read.
        A little slack keeps a tick that arrives a hair early from skipping a whole period.
        """
        period = self.settings.resync_seconds
        with self._cache_lock:
            last = self._last_reconciled.get((namespace, name))
        return last is None or self.monotonic() - last >= period - min(1.0, period / 10)

    def due_for_resync_all(self) -> list[tuple[str, str]]:
        """Every resource reconciled before (and not found gone since) that is due for a resync."""
        with self._cache_lock:
            known = sorted(self._last_reconciled)
        return [key for key in known if self.due_for_resync(*key)]

    def record_monitoring(self, namespace: str, name: str, *, requested: bool, available: bool) -> None:
        """What the last reconcile of a resource found: does it ask for monitoring, were the CRDs served."""
        self.record_optional(MONITORING, namespace, name, requested=requested, available=available)

    def saw_monitoring(self, namespace: str, name: str) -> bool | None:
        """Whether the last reconcile found the monitoring CRDs served; None if it asked for no monitoring."""
        return self.saw_optional(MONITORING, namespace, name)

    def monitoring_outdated(self, available: bool) -> list[tuple[str, str]]:
        """Resources asking for monitoring whose last reconcile saw the CRDs' availability differently.

        Only those can change when a monitoring CRD comes or goes: a resource that asks for no
        monitoring builds the same children and status either way, and one that already saw the
        current answer (the first of two CRDs installed, a replayed watch listing) has nothing to do.
        """
        return self.optional_outdated(MONITORING, available)

    def record_optional(self, feature: str, namespace: str, name: str, *, requested: bool, available: bool) -> None:
        """Like `record_monitoring`, for any optional API (`MONITORING`, `KEDA`)."""
        with self._cache_lock:
            seen = self._optional_seen.setdefault(feature, {})
            if requested:
                seen[(namespace, name)] = available
            else:
                seen.pop((namespace, name), None)

    def saw_optional(self, feature: str, namespace: str, name: str) -> bool | None:
        with self._cache_lock:
            return self._optional_seen.get(feature, {}).get((namespace, name))

    def optional_outdated(self, feature: str, available: bool) -> list[tuple[str, str]]:
        with self._cache_lock:
            seen = self._optional_seen.get(feature, {})
            return sorted(key for key, value in seen.items() if value is not available)

    def lock_for(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def child_needs_reconcile(self, resource: ApiResource, event_type: str | None, child: Mapping[str, Any]) -> bool:
        """Whether a child's watch event means drift (or news) rather than the echo of our own write.

        Deleted → yes. Edited so a field we own differs from what we applied → yes. A Deployment
        whose status moved since the last reconcile → yes (the custom resource's status follows it).
        A child this process has not reconciled yet → no: the resume of its owner covers it.
        """
        metadata = child.get("metadata") or {}
        key = (resource, str(metadata.get("namespace")), str(metadata.get("name")))
        with self._cache_lock:
            desired = self._desired.get(key)
            seen = self._status_seen.get(key)
        if desired is None:
            return False
        if event_type == "DELETED":
            return True
        if not matches(desired, child):
            return True
        if resource in STATUS_FOLLOWED:
            return seen != _status_fingerprint(child)
        return False

    def observe_child(self, resource: ApiResource, event_type: str | None, child: Mapping[str, Any]) -> None:
        """Keep the latest copy of a child from its watch event (dropped when it is deleted)."""
        metadata = child.get("metadata") or {}
        key = (resource, str(metadata.get("namespace")), str(metadata.get("name")))
        snapshot = None if event_type == "DELETED" else copy.deepcopy(dict(child))
        with self._cache_lock:
            if snapshot is None:
                self._live.pop(key, None)
            else:
                self._live[key] = snapshot

    def cached_child(self, resource: ApiResource, namespace: str, name: str) -> Manifest | None:
        with self._cache_lock:
            return self._live.get((resource, namespace, name))

    def observe_applied(self, namespace: str, result: ApplyResult) -> None:
        """Forget cached copies of what a reconcile wrote: only a watch event may refill them.

        A copy is trusted to say "unchanged" only if a watch keeps it current; for a kind that is
        not watched (e.g. ServiceMonitors whose CRD appeared after start-up) nothing refills it,
        so every resync reads the object and a hand edit is still noticed.
        """
        with self._cache_lock:
            for child in result.written:
                self._live.pop((child.resource, namespace, child.name), None)

    def kinds_to_prune(
        self,
        namespace: str,
        name: str,
        candidates: Sequence[ApiResource],
        desired: Iterable[tuple[ApiResource, str]] = (),
    ) -> list[ApiResource]:
        """Kinds whose stale children must be looked for: those with a child owned last time that is
        no longer desired, or every candidate after a restart."""
        with self._cache_lock:
            owned = self._owned_children.get((namespace, name))
        if owned is None:
            return list(candidates)
        stale = {kind for kind, _ in owned - frozenset(desired)}
        return [kind for kind in candidates if kind in stale]

    def record_owned(self, namespace: str, name: str, children: Iterable[tuple[ApiResource, str]]) -> None:
        with self._cache_lock:
            self._owned_children[(namespace, name)] = frozenset(children)

    def remember_desired(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        """Record what is about to be applied, before applying it, so its watch echo is recognised."""
        resource = resource_for(str(manifest["apiVersion"]), str(manifest["kind"]))
        stamped = with_applied_hash(manifest)
        stamped["metadata"].setdefault("namespace", namespace)
        with self._cache_lock:
            self._desired[(resource, namespace, str(stamped["metadata"]["name"]))] = stamped

    def forget_child(self, key: ChildKey) -> None:
        with self._cache_lock:
            self._desired.pop(key, None)

    def saw_status(self, child: Mapping[str, Any]) -> None:
        """Remember the status of a Deployment or ScaledObject the CR's status was computed from."""
        metadata = child.get("metadata") or {}
        resource = resource_for(str(child.get("apiVersion")), str(child.get("kind")))
        key = (resource, str(metadata.get("namespace")), str(metadata.get("name")))
        fingerprint = _status_fingerprint(child)
        with self._cache_lock:
            self._status_seen[key] = fingerprint

    def forget(self, namespace: str, name: str) -> None:
        self.secret_refs.forget(namespace, name)
        with self._cache_lock:
            for key in [k for k, v in self._desired.items() if k[1] == namespace and owner_of(v) == name]:
                del self._desired[key]
                self._live.pop(key, None)
            for key in [k for k in self._status_seen if k[1] == namespace and k[2] in (name, f"{name}{JOB_SUFFIX}")]:
                del self._status_seen[key]
            self._owned_children.pop((namespace, name), None)
            self._last_reconciled.pop((namespace, name), None)
            for seen in self._optional_seen.values():
                seen.pop((namespace, name), None)


def _status_fingerprint(child: Mapping[str, Any]) -> str:
    """What of a Deployment (or ScaledObject) the custom resource's status depends on.

    Of a ScaledObject only its conditions and HPA name: KEDA rewrites `lastActiveTime` on every
    active poll, which must not cost a reconcile every `pollingInterval`.
    """
    status = child.get("status") or {}
    if child.get("kind") == SCALED_OBJECTS.kind:
        conditions = [
            {key: entry.get(key) for key in ("type", "status", "reason", "message")}
            for entry in status.get("conditions") or []
            if isinstance(entry, Mapping)
        ]
        status = {"conditions": conditions, "hpaName": status.get("hpaName")}
    return json.dumps(
        {
            "generation": (child.get("metadata") or {}).get("generation"),
            "replicas": (child.get("spec") or {}).get("replicas"),
            "status": status,
        },
        sort_keys=True,
    )


def owner_of(child: Mapping[str, Any]) -> str | None:
    """The name of the `OcrDeployment` that owns `child` (its ownerReference), if any."""
    for ref in (child.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == constants.KIND and ref.get("apiVersion") == constants.API_VERSION:
            return str(ref.get("name"))
    return None
