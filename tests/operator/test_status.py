"""`status.compute_status`: conditions from what a reconcile observed, as a pure function."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from catalyst_operator.status import MissingSecret, Observed, compute_status, condition, status_changed

CRD = Path(__file__).resolve().parents[2] / "manifests" / "crds" / "ocr.catalyst.dev_ocrdeployments.yaml"
T0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def deployment(generation: int = 2, desired: int = 3, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": desired}, "status": status}


def rolled_out(generation: int = 2, replicas: int = 3) -> dict[str, Any]:
    return deployment(
        generation,
        replicas,
        observedGeneration=generation,
        replicas=replicas,
        updatedReplicas=replicas,
        readyReplicas=replicas,
        availableReplicas=replicas,
    )


def observed(**overrides: Any) -> Observed:
    values: dict[str, Any] = {
        "namespace": "ns",
        "generation": 4,
        "deployment": rolled_out(),
        "service_url": "http://x.ns.svc:80",
        "selector": "a=b",
    }
    return Observed(**{**values, **overrides})


def verdict(status: dict[str, Any], condition_type: str) -> tuple[str, str]:
    found = condition(status, condition_type)
    assert found is not None
    return found["status"], found["reason"]


def test_a_rolled_out_deployment_is_ready_and_reports_generation_replicas_url_and_selector():
    status = compute_status(observed(), None, T0)
    assert verdict(status, "Ready") == ("True", "Available")
    assert verdict(status, "Progressing") == ("False", "RolloutComplete")
    assert verdict(status, "Degraded") == ("False", "AsExpected")
    assert verdict(status, "MonitoringReady") == ("True", "NotRequested")
    assert status["observedGeneration"] == 4 and {c["observedGeneration"] for c in status["conditions"]} == {4}
    assert (status["replicas"], status["readyReplicas"]) == (3, 3)
    assert (status["url"], status["selector"]) == ("http://x.ns.svc:80", "a=b")
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {"2026-01-01T12:00:00Z"}


@pytest.mark.parametrize(
    ("dep", "ready", "progressing", "degraded"),
    [
        (None, ("False", "DeploymentPending"), ("True", "Creating"), ("False", "AsExpected")),
        (
            deployment(3, 3, observedGeneration=2, replicas=3, updatedReplicas=3, availableReplicas=3),
            ("False", "RolloutInProgress"),
            ("True", "RolloutInProgress"),
            ("False", "AsExpected"),
        ),
        (
            deployment(2, 3, observedGeneration=2, replicas=4, updatedReplicas=2, availableReplicas=1),
            ("False", "MinimumReplicasUnavailable"),
            ("True", "RolloutInProgress"),
            ("False", "AsExpected"),
        ),
        (
            deployment(
                2,
                3,
                observedGeneration=2,
                replicas=3,
                updatedReplicas=1,
                availableReplicas=2,
                conditions=[
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": "ReplicaSet x has timed out progressing.",
                    }
                ],
            ),
            ("False", "MinimumReplicasUnavailable"),
            ("True", "RolloutInProgress"),
            ("True", "ProgressDeadlineExceeded"),
        ),
        (
            deployment(2, 0, observedGeneration=2),
            ("False", "ScaledToZero"),
            ("False", "RolloutComplete"),
            ("False", "AsExpected"),
        ),
    ],
    ids=["not-created", "generation-not-observed", "replicas-unavailable", "deadline-exceeded", "scaled-to-zero"],
)
def test_rollout_states_get_honest_reasons(dep, ready, progressing, degraded):
    status = compute_status(observed(deployment=dep), None, T0)
    assert verdict(status, "Ready") == ready
    assert verdict(status, "Progressing") == progressing
    assert verdict(status, "Degraded") == degraded


def test_missing_secret_names_the_secret_and_key_and_never_claims_ready():
    missing = (MissingSecret("db", "url"), MissingSecret("keys", "api-keys", secret_exists=True))
    status = compute_status(observed(missing_secrets=missing), None, T0)
    assert verdict(status, "Ready") == ("False", "SecretNotFound")
    assert verdict(status, "Degraded") == ("True", "SecretNotFound")
    message = condition(status, "Degraded")["message"]
    assert "Secret ns/db (key 'url') not found" in message
    assert "Secret ns/keys has no key 'api-keys'" in message


def test_invalid_spec_blocks_everything_with_the_parser_message():
    status = compute_status(observed(spec_error="spec.ocr.psm: must be between 0 and 13"), None, T0)
    assert verdict(status, "Ready") == ("False", "InvalidSpec")
    assert verdict(status, "Degraded") == ("True", "InvalidSpec")
    assert verdict(status, "MonitoringReady") == ("Unknown", "InvalidSpec")
    assert condition(status, "Ready")["message"] == "spec.ocr.psm: must be between 0 and 13"


def test_monitoring_requested_without_crds_is_reported_but_does_not_block_readiness():
    status = compute_status(observed(monitoring_requested=True, monitoring_available=False), None, T0)
    assert verdict(status, "MonitoringReady") == ("False", "ServiceMonitorCRDMissing")
    assert verdict(status, "Ready") == ("True", "Available")
    status = compute_status(observed(monitoring_requested=True, monitoring_available=True), None, T0)
    assert verdict(status, "MonitoringReady") == ("True", "Applied")


def test_transition_time_moves_only_when_the_status_flips():
    first = compute_status(observed(deployment=None), None, T0)
    same = compute_status(observed(deployment=None), first, T1)
    assert same == first and not status_changed(same, first)
    flipped = compute_status(observed(), first, T1)
    assert condition(flipped, "Ready")["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert condition(flipped, "Degraded")["lastTransitionTime"] == "2026-01-01T12:00:00Z"  # False → False
    assert status_changed(flipped, first)


def test_status_changed_ignores_fields_others_own_and_notices_dropped_url():
    new = compute_status(observed(), None, T0)
    assert not status_changed(new, {**new, "someoneElses": 1})
    without_url = {key: value for key, value in new.items() if key != "url"}
    assert status_changed(without_url, new)


def status_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]


@pytest.mark.parametrize(
    ("case", "display"),
    [
        (observed(), "3/3"),
        (observed(deployment=None, desired_replicas=2), "0/2"),
        (observed(missing_secrets=(MissingSecret("db", "url"),), desired_replicas=4), "3/4"),
        (observed(spec_error="spec.ocr.psm: out of range"), "3/3"),
        (observed(monitoring_requested=True, monitoring_available=False), "3/3"),
    ],
    ids=["ready", "pending", "secret-missing", "invalid-spec", "autoscaled-no-monitoring"],
)
def test_every_status_validates_against_the_crds_status_schema(case, display):
    status = compute_status(case, None, T0)
    jsonschema.validate(status, status_schema(), format_checker=jsonschema.FormatChecker())
    assert status["replicasDisplay"] == display
