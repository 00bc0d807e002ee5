"""The `app.kubernetes.io/*` labels every child carries, and the subset its selectors use.

Selectors must never change over a Deployment's life (the API server refuses it), so they hold
only the name, instance and component; the version label comes from the image tag and may change.
"""

from __future__ import annotations

import re

from catalyst_operator.constants import (
    APP_NAME,
    COMPONENT_SERVER,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    LABEL_VERSION,
    OPERATOR_NAME,
)

_NOT_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def selector_labels(instance: str, component: str = COMPONENT_SERVER) -> dict[str, str]:
    """Labels that select one instance's pods (Deployment selector, Service, PDB, policies)."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: instance, LABEL_COMPONENT: component}


def version_label(image: str) -> str:
    """A label-safe version from an image reference: its tag, else the digest's start, else `latest`."""
    reference, _, digest = image.partition("@")
    last = reference.rsplit("/", 1)[-1]
    _, has_tag, tag = last.rpartition(":")
    if has_tag and tag:
        raw = tag
    elif digest:
        raw = digest.replace(":", "-")[:19]
    else:
        raw = "latest"
    value = _NOT_LABEL_CHARS.sub("-", raw)[:63].strip("-_.")
    return value or "latest"


def child_labels(instance: str, component: str, image: str, managed_by: str = OPERATOR_NAME) -> dict[str, str]:
    """The full recommended label set for one child object."""
    return {
        **selector_labels(instance, component),
        LABEL_PART_OF: APP_NAME,
        LABEL_MANAGED_BY: managed_by,
        LABEL_VERSION: version_label(image),
    }
