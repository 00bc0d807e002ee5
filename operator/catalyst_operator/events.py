"""Kubernetes Events about an `OcrDeployment`: which ones a reconcile warrants, and posting them.

Only what changed is worth an Event — children written, a problem appearing or changing, the
resource becoming Ready — so a quiet resync posts nothing (posting is a write). Posting goes
through kopf's event queue, which batches and retries in the background and attributes the
Events to the operator (`reportingComponent`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import kopf

from catalyst_operator import constants
from catalyst_operator.status import FALSE, TRUE, condition


@dataclass(frozen=True)
class EventToPost:
    type: str
    reason: str
    message: str


def transition_events(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    created: Sequence[str],
    updated: Sequence[str],
) -> tuple[EventToPost, ...]:
    """Events for what changed in this reconcile only: a quiet resync posts nothing (posting is a write)."""
    events: list[EventToPost] = []
    if created:
        events.append(EventToPost("Normal", "Created", "created " + ", ".join(created)))
    if updated:
        events.append(EventToPost("Normal", "Updated", ", ".join(updated)))
    for condition_type, notable_status, event_type in (
        (constants.CONDITION_DEGRADED, TRUE, "Warning"),
        (constants.CONDITION_MONITORING_READY, FALSE, "Warning"),
        (constants.CONDITION_AUTOSCALING_READY, FALSE, "Warning"),
        (constants.CONDITION_READY, TRUE, "Normal"),
    ):
        after = condition(new, condition_type)
        before = condition(old, condition_type)
        if after is None or after.get("status") != notable_status:
            continue
        if before is not None and (before.get("status"), before.get("reason"), before.get("message")) == (
            after.get("status"),
            after.get("reason"),
            after.get("message"),
        ):
            continue
        events.append(EventToPost(event_type, str(after.get("reason")), str(after.get("message"))))
    return tuple(events)


def post(cr: Mapping[str, Any], events: Iterable[EventToPost]) -> None:
    """Queue `events` for the custom resource `cr` (which must carry apiVersion, kind and metadata)."""
    for event in events:
        kopf.event(kopf.Body(cast(kopf.RawBody, dict(cr))), type=event.type, reason=event.reason, message=event.message)
