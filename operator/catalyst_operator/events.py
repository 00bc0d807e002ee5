"""Kubernetes Events about an `OcrDeployment`, posted through kopf's event queue.

kopf posts them in the background (batched, retried) and attributes them to the operator
(`reportingComponent`). A reconcile decides *which* events to post (only on transitions, so a
quiet resync writes nothing); this module only hands them over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

from catalyst_operator.reconcile import EventToPost


def post(cr: Mapping[str, Any], events: Iterable[EventToPost]) -> None:
    """Queue `events` for the custom resource `cr` (which must carry apiVersion, kind and metadata)."""
    for event in events:
        kopf.event(kopf.Body(cast(kopf.RawBody, dict(cr))), type=event.type, reason=event.reason, message=event.message)
