"""What scales the job worker Deployment (`spec.jobWorkers.autoscaling`): KEDA, or an HPA fallback.

The signal is the backlog, pages queued **and** in progress: counting running pages too means a
scale-down never removes a pod that still has work, and the first queued page wakes the workers
from zero (KEDA's activation threshold 0). Exactly one scaler exists for the Deployment:

- KEDA served (`keda.sh/v1alpha1`): a `ScaledObject` (KEDA creates and owns the HPA itself) with
  - the `postgresql` trigger (default): KEDA runs `BACKLOG_SQL` against the job database, its URL
    read from `spec.database`'s Secret through a `TriggerAuthentication` (nothing else needed, exact,
    works while no worker runs), or
  - the `prometheus` trigger: `max(ocr_job_backlog_pages{namespace, job})` from the Prometheus that
    scrapes the ServiceMonitor (every API pod reports the store's global figure, hence `max`);
- KEDA missing: our own HPA on the `ocr_job_backlog_pages` External metric when the metrics API
  serves it (e.g. prometheus-adapter), else on CPU — both with at least one pod, because an HPA
  cannot scale to zero. `AutoscalingReady` says which (see `status.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.deployment import job_workers_name
from catalyst_operator.builders.meta import child_metadata
from catalyst_operator.constants import COMPONENT_JOB_WORKER, KEDA_API_VERSION
from catalyst_operator.spec import JobWorkersAutoscaling, OcrDeploymentSpec
from ocr_service.contract import BACKLOG_METRIC, BACKLOG_SQL

FALLBACK_CPU_UTILIZATION: Final = 70
"""Target CPU use (percent of the request) of the CPU fallback HPA."""
TRIGGER_NAME: Final = "backlog"


class Scaler(StrEnum):
    """What scales the job workers; `.status.jobWorkers.scaler`."""

    KEDA = "KEDA"
    HPA_EXTERNAL = "HPA-External"
    HPA_CPU = "HPA-CPU"
    NONE = "None"


def job_worker_scaler(spec: OcrDeploymentSpec, ctx: BuildContext) -> Scaler | None:
    """None without job workers; `NONE` when they run a fixed number of replicas."""
    if spec.job_workers is None:
        return None
    if not spec.job_workers.autoscaling.enabled:
        return Scaler.NONE
    if ctx.keda_available:
        return Scaler.KEDA
    return Scaler.HPA_EXTERNAL if ctx.backlog_metric_available else Scaler.HPA_CPU


def _autoscaling(spec: OcrDeploymentSpec) -> JobWorkersAutoscaling:
    if spec.job_workers is None:
        raise ValueError("the job workers' scaler needs spec.jobWorkers")
    return spec.job_workers.autoscaling


def _target_ref(spec: OcrDeploymentSpec) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": job_workers_name(spec.name)}


def backlog_promql(spec: OcrDeploymentSpec) -> str:
    return f'max({BACKLOG_METRIC}{{namespace="{spec.namespace}", job="{spec.name}"}})'


def build_trigger_authentication(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    """KEDA reads the database URL from the user's Secret itself: the credential is never copied."""
    if spec.database is None:
        raise ValueError("the postgresql trigger needs spec.database")
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": child_metadata(cr, spec, ctx, job_workers_name(spec.name), COMPONENT_JOB_WORKER),
        "spec": {
            "secretTargetRef": [{"parameter": "connection", "name": spec.database.name, "key": spec.database.key}]
        },
    }


def build_scaled_object(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    scaling = _autoscaling(spec)
    name = job_workers_name(spec.name)
    target = str(scaling.pages_per_replica)
    trigger: dict[str, Any]
    if scaling.trigger == "prometheus":
        trigger = {
            "type": "prometheus",
            "name": TRIGGER_NAME,
            "metadata": {
                "serverAddress": str(scaling.prometheus_server_address),
                "query": backlog_promql(spec),
                "threshold": target,
                "activationThreshold": "0",
            },
        }
    else:
        trigger = {
            "type": "postgresql",
            "name": TRIGGER_NAME,
            "metadata": {"query": BACKLOG_SQL, "targetQueryValue": target, "activationTargetQueryValue": "0"},
            "authenticationRef": {"name": name},
        }
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": child_metadata(cr, spec, ctx, name, COMPONENT_JOB_WORKER),
        "spec": {
            "scaleTargetRef": _target_ref(spec),
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": scaling.polling_interval_seconds,
            # From the last active reading to zero pods; between 1 and max, the HPA behaviour below.
            "cooldownPeriod": scaling.scale_down_stabilization_seconds,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds}}
                }
            },
            "triggers": [trigger],
        },
    }


def build_job_worker_autoscaler(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    """The fallback HPA (no KEDA): on the External backlog metric if served, else on CPU; never below 1."""
    scaling = _autoscaling(spec)
    metric: dict[str, Any]
    if ctx.backlog_metric_available:
        metric = {
            "type": "External",
            "external": {
                "metric": {
                    "name": BACKLOG_METRIC,
                    "selector": {"matchLabels": {"namespace": spec.namespace, "job": spec.name}},
                },
                "target": {"type": "AverageValue", "averageValue": str(scaling.pages_per_replica)},
            },
        }
    else:
        metric = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": FALLBACK_CPU_UTILIZATION},
            },
        }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(cr, spec, ctx, job_workers_name(spec.name), COMPONENT_JOB_WORKER),
        "spec": {
            "scaleTargetRef": _target_ref(spec),
            "minReplicas": max(1, scaling.min_replicas),
            "maxReplicas": scaling.max_replicas,
            "metrics": [metric],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds}},
        },
    }
