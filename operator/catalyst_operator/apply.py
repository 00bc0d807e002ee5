"""Bring a set of child objects to their desired state with as few writes as possible.

Every desired manifest is server-side applied under one field manager (`kube.FIELD_MANAGER`,
force) — but only after a read shows the live object differs in a field we own. A re-reconcile
with nothing changed therefore sends no write at all. A hash of the applied manifest is kept in
an annotation: when the desired manifest changes (including a field being dropped), the hash
changes and the apply goes out, so the API server can remove fields we no longer set.

Children that are no longer desired (autoscaling, monitoring or job workers switched off) are
pruned: listed, filtered on our side by labels and by ownerReference to this very owner (list
selectors are not trusted to be honoured), then deleted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

from catalyst_operator import constants
from catalyst_operator.kube import KubeApi, Manifest
from catalyst_operator.resources import ApiResource, resource_for

APPLIED_HASH_ANNOTATION: Final = f"{constants.ANNOTATION_PREFIX}applied-hash"
"""Hash of the manifest last applied to a child: a changed hash means a changed desired state."""


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


@dataclass(frozen=True)
class ChildResult:
    resource: ApiResource
    name: str
    action: Action
    live: Manifest | None
    """The object as the server holds it after this step (None once deleted)."""


@dataclass(frozen=True)
class ApplyResult:
    children: tuple[ChildResult, ...] = field(default_factory=tuple)

    def live(self, resource: ApiResource, name: str | None = None) -> Manifest | None:
        """The first live child of `resource` (the one named `name`, if given)."""
        for child in self.children:
            if child.resource == resource and child.live is not None and name in (None, child.name):
                return child.live
        return None

    @property
    def written(self) -> tuple[ChildResult, ...]:
        return tuple(child for child in self.children if child.action is not Action.UNCHANGED)


def with_applied_hash(manifest: Mapping[str, Any]) -> Manifest:
    """A copy of `manifest` carrying the hash of its own content in an annotation."""
    stamped = copy.deepcopy(dict(manifest))
    metadata = stamped.setdefault("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(APPLIED_HASH_ANNOTATION, None)
    metadata["annotations"] = annotations
    digest = hashlib.sha256(json.dumps(stamped, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    annotations[APPLIED_HASH_ANNOTATION] = digest[:32]
    return stamped


def matches(desired: Any, live: Any) -> bool:
    """Whether `live` holds every field of `desired` with the same value (extra live fields are fine).

    Extra fields are what the API server defaults or other managers own; they are not ours to
    compare. An empty map or list we set may be stored as absent. Lists must match element by
    element. Quantities compare by value ("0.5" == "500m").
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            matches(v, live[k]) if k in live else v in ({}, []) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(map(matches, desired, live))
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live  # JSON true is not 1
    if desired == live:
        return True
    return isinstance(desired, str | int) and isinstance(live, str | int) and _same_quantity(desired, live)


def apply_children(
    api: KubeApi,
    namespace: str,
    desired: Sequence[Mapping[str, Any]],
    *,
    owner_uid: str,
    owner_labels: Mapping[str, str],
    prunable: Iterable[ApiResource] = (),
    cached: Callable[[ApiResource, str], Manifest | None] | None = None,
    new_owner: bool = False,
) -> ApplyResult:
    """Apply `desired` (skipping the unchanged), then prune owned objects of kinds in `prunable`
    whose names `desired` no longer contains (a kind may have several children: the API's and the
    job workers' Deployment and HPA).

    `cached(resource, name)` may offer a recent copy of a live object (from a watch): when it
    already holds the desired fields, no request is sent at all. A cached copy is trusted only to
    say "unchanged" — any difference is checked against a fresh read before writing.
    `new_owner`: the owner was just created, so none of its children can exist yet: apply
    without reading first.
    """
    results: list[ChildResult] = []
    desired_names: dict[ApiResource, set[str]] = {}
    for manifest in desired:
        resource = resource_for(str(manifest["apiVersion"]), str(manifest["kind"]))
        name = str(manifest["metadata"]["name"])
        desired_names.setdefault(resource, set()).add(name)
        cached_live = cached(resource, name) if cached else None
        results.append(_apply_one(api, namespace, resource, name, manifest, cached_live, read_first=not new_owner))
    for resource in prunable:
        keep = desired_names.get(resource, set())
        for stale in _owned(api, namespace, resource, owner_uid, owner_labels):
            stale_name = str(stale["metadata"]["name"])
            if stale_name in keep:
                continue
            api.delete(resource.object_path(namespace, stale_name), uid=stale["metadata"].get("uid"))
            results.append(ChildResult(resource, stale_name, Action.DELETED, None))
    return ApplyResult(tuple(results))


def _apply_one(
    api: KubeApi,
    namespace: str,
    resource: ApiResource,
    name: str,
    manifest: Mapping[str, Any],
    cached_live: Manifest | None,
    *,
    read_first: bool = True,
) -> ChildResult:
    stamped = with_applied_hash(manifest)
    stamped["metadata"].setdefault("namespace", namespace)
    if cached_live is not None and matches(stamped, cached_live):
        return ChildResult(resource, name, Action.UNCHANGED, cached_live)
    path = resource.object_path(namespace, name)
    live = api.get(path) if read_first else None
    if live is not None and matches(stamped, live):
        return ChildResult(resource, name, Action.UNCHANGED, live)
    applied = api.apply(path, stamped)
    return ChildResult(resource, name, Action.CREATED if live is None else Action.UPDATED, applied)


def _owned(
    api: KubeApi, namespace: str, resource: ApiResource, owner_uid: str, owner_labels: Mapping[str, str]
) -> list[Manifest]:
    owned = []
    for item in api.list(resource.collection_path(namespace), label_selector=owner_labels):
        metadata = item.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if any(labels.get(key) != value for key, value in owner_labels.items()):
            continue
        if any(ref.get("uid") == owner_uid for ref in metadata.get("ownerReferences") or []):
            owned.append(item)
    return owned


_QUANTITY: Final = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
_SUFFIXES: Final = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}  # fmt: skip


def _quantity(value: str | int) -> Decimal | None:
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIXES[suffix]
    except (InvalidOperation, KeyError):
        return None


def _same_quantity(a: str | int, b: str | int) -> bool:
    """The API server canonicalises quantities ("1000m" reads back as "1")."""
    left, right = _quantity(a), _quantity(b)
    return left is not None and left == right
