"""The `OcrDeployment` status, computed as a pure function of what the reconcile observed.

Conditions follow the Kubernetes API conventions: `type`, `status` ("True"/"False"/"Unknown"),
a CamelCase `reason`, a human `message`, `observedGeneration`, and a `lastTransitionTime` that
moves only when `status` flips — so a resync that sees nothing new computes an identical status
and the reconcile sends no write. Reasons are honest: they name the Secret and key that are
missing, or say that a rollout is in progress, rather than a generic "not ready".
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from catalyst_operator import constants
from catalyst_operator.builders.job_workers import Scaler
from catalyst_operator.spec import SpecError, parse_quantity

REMOVABLE_STATUS_KEYS: Final = ("selector", "url", "jobWorkers")
"""Status fields that disappear when not computed (merge patch: written as null to remove them)."""

TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"


@dataclass(frozen=True)
class MissingSecret:
    """A referenced Secret (or one key of it) that does not exist. Never carries a value."""

    name: str
    key: str | None = None
    secret_exists: bool = False

    def describe(self, namespace: str) -> str:
        if self.secret_exists and self.key:
            return f"Secret {namespace}/{self.name} has no key {self.key!r}"
        if self.key:
            return f"Secret {namespace}/{self.name} (key {self.key!r}) not found"
        return f"Secret {namespace}/{self.name} not found"


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile learnt; the input of `compute_status`."""

    namespace: str
    generation: int
    spec_error: str | None = None
    missing_secrets: Sequence[MissingSecret] = ()
    monitoring_requested: bool = False
    monitoring_available: bool = True
    deployment: Mapping[str, Any] | None = None
    """The live Deployment (metadata, spec and status), None before it exists."""
    service_url: str | None = None
    selector: str | None = None
    desired_replicas: int | None = None
    """What the spec asks for (None: autoscaled; the live Deployment's count is used)."""
    scaler: str | None = None
    """What scales the job workers (`builders.Scaler` value), None without `spec.jobWorkers`."""
    keda_available: bool = False
    scaled_object: Mapping[str, Any] | None = None
    """The live ScaledObject (with KEDA's status), when KEDA scales the job workers."""
    job_workers: Mapping[str, Any] | None = None
    """The live job worker Deployment."""
    backlog: int | None = None
    """Pages queued + in progress as the scaler's HPA last measured them (None: not known)."""


@dataclass(frozen=True)
class _Verdict:
    status: str
    reason: str
    message: str


def selector_string(match_labels: Mapping[str, str]) -> str:
    """The `status.selector` the scale subresource publishes (`kubectl scale`, HPA)."""
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))


def compute_status(observed: Observed, previous: Mapping[str, Any] | None, now: datetime.datetime) -> dict[str, Any]:
    """The full `status` for the custom resource, reusing `previous` transition times when unchanged."""
    verdicts = _verdicts(observed)
    previous_conditions = {
        str(c.get("type")): c for c in (previous or {}).get("conditions") or [] if isinstance(c, Mapping)
    }
    timestamp = now.astimezone(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    conditions = []
    for condition_type in constants.CONDITION_TYPES:
        verdict = verdicts[condition_type]
        before = previous_conditions.get(condition_type)
        unchanged = before is not None and before.get("status") == verdict.status
        conditions.append(
            {
                "type": condition_type,
                "status": verdict.status,
                "reason": verdict.reason,
                "message": verdict.message,
                "observedGeneration": observed.generation,
                "lastTransitionTime": before.get("lastTransitionTime") if unchanged and before else timestamp,
            }
        )
    deployment_status = (observed.deployment or {}).get("status") or {}
    ready_replicas = int(deployment_status.get("readyReplicas") or 0)
    desired = observed.desired_replicas
    if desired is None:
        desired = int(((observed.deployment or {}).get("spec") or {}).get("replicas") or 0)
    status: dict[str, Any] = {
        "observedGeneration": observed.generation,
        "replicas": int(deployment_status.get("replicas") or 0),
        "readyReplicas": ready_replicas,
        "replicasDisplay": f"{ready_replicas}/{desired}",
        "conditions": conditions,
    }
    if observed.scaler is not None:
        worker_status = (observed.job_workers or {}).get("status") or {}
        job_workers: dict[str, Any] = {
            "replicas": int(worker_status.get("replicas") or 0),
            "readyReplicas": int(worker_status.get("readyReplicas") or 0),
            "scaler": observed.scaler,
        }
        if observed.backlog is not None:
            job_workers["backlog"] = observed.backlog
        status["jobWorkers"] = job_workers
    if observed.selector:
        status["selector"] = observed.selector
    if observed.service_url:
        status["url"] = observed.service_url
    return status


def backlog_from_hpa(hpa: Mapping[str, Any] | None) -> int | None:
    """The backlog an HPA last measured on its External metric (KEDA's or ours), in pages; None if none yet.

    An `AverageValue` target reports the value per pod, so it is multiplied back by the pods it was measured over.
    """
    status = (hpa or {}).get("status") or {}
    for metric in status.get("currentMetrics") or []:
        if not isinstance(metric, Mapping) or metric.get("type") != "External":
            continue
        current = (metric.get("external") or {}).get("current") or {}
        try:
            if current.get("value") is not None:
                return round(parse_quantity(current["value"], "value"))
            if current.get("averageValue") is not None:
                pods = int(status.get("currentReplicas") or 0)
                return round(parse_quantity(current["averageValue"], "averageValue") * pods)
        except SpecError:
            return None
    return None


def status_changed(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether writing `new` would change anything we own in the stored status."""
    old = old or {}
    return any(old.get(key) != value for key, value in new.items()) or any(
        key in old and key not in new for key in REMOVABLE_STATUS_KEYS
    )


def condition(status: Mapping[str, Any] | None, condition_type: str) -> Mapping[str, Any] | None:
    for entry in (status or {}).get("conditions") or []:
        if isinstance(entry, Mapping) and entry.get("type") == condition_type:
            return entry
    return None


def _verdicts(observed: Observed) -> dict[str, _Verdict]:
    monitoring = _monitoring(observed)
    if observed.spec_error is not None:
        blocked = _Verdict(FALSE, "InvalidSpec", observed.spec_error)
        return {
            constants.CONDITION_READY: blocked,
            constants.CONDITION_PROGRESSING: blocked,
            constants.CONDITION_DEGRADED: _Verdict(TRUE, "InvalidSpec", observed.spec_error),
            constants.CONDITION_MONITORING_READY: _Verdict(UNKNOWN, "InvalidSpec", observed.spec_error),
            constants.CONDITION_AUTOSCALING_READY: _Verdict(UNKNOWN, "InvalidSpec", observed.spec_error),
        }
    if observed.missing_secrets:
        message = "; ".join(m.describe(observed.namespace) for m in observed.missing_secrets)
        message += ": waiting for it before rolling out"
        return {
            constants.CONDITION_READY: _Verdict(FALSE, "SecretNotFound", message),
            constants.CONDITION_PROGRESSING: _Verdict(FALSE, "SecretNotFound", message),
            constants.CONDITION_DEGRADED: _Verdict(TRUE, "SecretNotFound", message),
            constants.CONDITION_MONITORING_READY: monitoring,
            constants.CONDITION_AUTOSCALING_READY: _Verdict(UNKNOWN, "SecretNotFound", message),
        }
    ready, progressing, degraded = _rollout(observed.deployment)
    return {
        constants.CONDITION_READY: ready,
        constants.CONDITION_PROGRESSING: progressing,
        constants.CONDITION_DEGRADED: degraded,
        constants.CONDITION_MONITORING_READY: monitoring,
        constants.CONDITION_AUTOSCALING_READY: _autoscaling(observed),
    }


def _autoscaling(observed: Observed) -> _Verdict:
    """Which scaler runs the job workers, honestly: a fallback says what it cannot do."""
    scaler = observed.scaler
    if scaler is None or scaler == Scaler.NONE:
        return _Verdict(TRUE, "NotRequested", "no job worker autoscaling requested")
    keda = f"KEDA ({constants.KEDA_API_VERSION})"
    if scaler == Scaler.KEDA:
        ready = condition((observed.scaled_object or {}).get("status"), "Ready")
        if ready is None:
            return _Verdict(UNKNOWN, "ScaledObjectPending", "ScaledObject applied; waiting for KEDA to report on it")
        if ready.get("status") == TRUE:
            return _Verdict(TRUE, "ScaledObjectReady", "KEDA scales the job workers on their backlog")
        detail = str(ready.get("message") or ready.get("reason") or "no reason given")
        return _Verdict(FALSE, "ScaledObjectNotReady", f"KEDA reports the ScaledObject not ready: {detail}")
    if scaler == Scaler.HPA_EXTERNAL:
        return _Verdict(
            TRUE,
            "ExternalMetricHPA",
            f"{keda} is not installed: an HPA scales the job workers on the ocr_job_backlog_pages External "
            "metric, with at least 1 pod (scaling to zero needs KEDA)",
        )
    return _Verdict(
        FALSE,
        "KEDANotInstalled",
        f"{keda} is not installed and the metrics API serves no ocr_job_backlog_pages: an HPA scales the job "
        "workers on CPU, with at least 1 pod; install KEDA to scale on the queue and down to zero",
    )


def _rollout(deployment: Mapping[str, Any] | None) -> tuple[_Verdict, _Verdict, _Verdict]:
    """Ready / Progressing / Degraded from the Deployment, as `kubectl rollout status` judges it."""
    if deployment is None:
        waiting = _Verdict(FALSE, "DeploymentPending", "the Deployment has not been created yet")
        return (
            waiting,
            _Verdict(TRUE, "Creating", "creating the Deployment"),
            _Verdict(FALSE, "AsExpected", "no problem observed"),
        )
    metadata = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    generation = int(metadata.get("generation") or 0)
    observed_generation = int(status.get("observedGeneration") or 0)
    total = int(status.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    deployment_conditions = {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    progress = deployment_conditions.get("Progressing") or {}
    failure = deployment_conditions.get("ReplicaFailure") or {}

    counts = f"{available}/{desired} replicas available, {updated} updated"
    if failure.get("status") == TRUE:
        degraded = _Verdict(TRUE, str(failure.get("reason") or "ReplicaFailure"), str(failure.get("message") or ""))
    elif progress.get("reason") == "ProgressDeadlineExceeded":
        degraded = _Verdict(TRUE, "ProgressDeadlineExceeded", str(progress.get("message") or counts))
    else:
        degraded = _Verdict(FALSE, "AsExpected", counts)

    if observed_generation < generation:
        progressing = _Verdict(TRUE, "RolloutInProgress", "the Deployment controller has not observed the new spec yet")
    elif updated < desired or total > updated or available < updated:
        progressing = _Verdict(TRUE, "RolloutInProgress", counts)
    else:
        progressing = _Verdict(FALSE, "RolloutComplete", counts)

    if desired == 0:
        ready = _Verdict(FALSE, "ScaledToZero", "replicas is 0: nothing serves requests")
    elif available >= desired and observed_generation >= generation and degraded.status == FALSE:
        ready = _Verdict(TRUE, "Available", counts)
    elif available >= desired and degraded.status == FALSE:
        ready = _Verdict(FALSE, "RolloutInProgress", progressing.message)
    else:
        ready = _Verdict(FALSE, "MinimumReplicasUnavailable", counts)
    return ready, progressing, degraded


def _monitoring(observed: Observed) -> _Verdict:
    if not observed.monitoring_requested:
        return _Verdict(TRUE, "NotRequested", "no ServiceMonitor or PrometheusRule requested")
    if not observed.monitoring_available:
        return _Verdict(
            FALSE,
            "ServiceMonitorCRDMissing",
            f"the cluster does not serve {constants.MONITORING_API_VERSION} (Prometheus Operator CRDs): "
            "monitoring objects skipped, everything else is running",
        )
    return _Verdict(TRUE, "Applied", "monitoring objects applied")
