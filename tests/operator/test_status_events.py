"""`events.transition_events`: Events only for what changed, so a quiet resync posts nothing."""

from __future__ import annotations

import datetime

from catalyst_operator.events import transition_events
from catalyst_operator.status import MissingSecret, Observed, compute_status

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
READY_DEPLOYMENT = {
    "metadata": {"generation": 1},
    "spec": {"replicas": 1},
    "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
}


def status(**overrides):
    return compute_status(Observed(namespace="ns", generation=1, **overrides), None, T0)


def test_children_written_are_announced_once():
    pending = status()
    events = transition_events(None, pending, created=["Deployment x", "Service x"], updated=[])
    assert [(e.type, e.reason) for e in events] == [("Normal", "Created")]
    assert events[0].message == "created Deployment x, Service x"
    updated = transition_events(pending, pending, created=[], updated=["deleted HorizontalPodAutoscaler x"])
    assert [(e.type, e.reason, e.message) for e in updated] == [
        ("Normal", "Updated", "deleted HorizontalPodAutoscaler x")
    ]


def test_a_quiet_resync_posts_nothing():
    for current in (status(), status(deployment=READY_DEPLOYMENT), status(spec_error="spec.x: bad")):
        assert transition_events(current, current, created=[], updated=[]) == ()


def test_problems_are_warned_when_they_appear_or_change_and_readiness_when_reached():
    pending = status()
    missing = status(missing_secrets=(MissingSecret("db", "url"),))
    (warning,) = transition_events(pending, missing, created=[], updated=[])
    assert (warning.type, warning.reason) == ("Warning", "SecretNotFound") and "ns/db" in warning.message
    other = status(missing_secrets=(MissingSecret("db", "password"),))
    assert [e.reason for e in transition_events(missing, other, created=[], updated=[])] == ["SecretNotFound"]
    no_crds = status(deployment=READY_DEPLOYMENT, monitoring_requested=True, monitoring_available=False)
    reasons = [(e.type, e.reason) for e in transition_events(pending, no_crds, created=[], updated=[])]
    assert reasons == [("Warning", "ServiceMonitorCRDMissing"), ("Normal", "Available")]
