"""Metadata shared by every child: name, namespace, labels and the controller ownerReference.

The ownerReference makes deletion of the `OcrDeployment` cascade to its children and lets the
runtime map a child event back to its CR; `controller: true` marks this operator as the one
that reconciles the child.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalyst_operator.builders.context import BuildContext
from catalyst_operator.constants import API_VERSION, KIND
from catalyst_operator.labels import child_labels
from catalyst_operator.spec import OcrDeploymentSpec, SpecError


def image_of(spec: OcrDeploymentSpec, ctx: BuildContext) -> str:
    """The image the pods run: the CR's own, else the operator's default."""
    return spec.image or ctx.default_image


def owner_reference(cr: Mapping[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to the CR; it needs the CR's uid, which the API server assigns."""
    metadata = cr.get("metadata") or {}
    uid = metadata.get("uid")
    if not uid:
        raise SpecError("metadata.uid", "the OcrDeployment has no uid yet (was it read from the API server?)")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": metadata["name"],
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(
    cr: Mapping[str, Any],
    spec: OcrDeploymentSpec,
    ctx: BuildContext,
    name: str,
    component: str,
    *,
    extra_labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`metadata` for one child; `extra_labels` never override the recommended labels."""
    labels = {**(extra_labels or {}), **child_labels(spec.name, component, image_of(spec, ctx), ctx.operator_name)}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": spec.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(cr)],
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata
