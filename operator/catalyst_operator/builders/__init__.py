"""Pure builders: an `OcrDeployment` (+ facts about the cluster) -> the desired child manifests.

No I/O happens here: `build_children` returns plain dicts, in the order they should be
applied (config before the pods that read it; the Deployment before what scales or guards it).
Children that are not wanted for this spec are simply absent from the list; `CHILD_TYPES` lists
every kind the operator may own, so the runtime can delete the ones no longer built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from catalyst_operator.builders.autoscaler import build_autoscaler
from catalyst_operator.builders.configmap import build_configmap, config_hash, configmap_name, render_config
from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.deployment import (
    build_deployment,
    build_job_worker_deployment,
    job_workers_name,
    pod_template_hash,
)
from catalyst_operator.builders.disruption_budget import build_disruption_budget
from catalyst_operator.builders.job_workers import (
    Scaler,
    build_job_worker_autoscaler,
    build_scaled_object,
    build_trigger_authentication,
    job_worker_scaler,
)
from catalyst_operator.builders.meta import owner_reference
from catalyst_operator.builders.monitoring import (
    build_job_worker_pod_monitor,
    build_prometheus_rule,
    build_service_monitor,
    rule_groups,
    scrapes_job_workers,
)
from catalyst_operator.builders.network_policy import build_network_policy
from catalyst_operator.builders.service import build_service, service_url
from catalyst_operator.constants import (
    CONFIG_HASH_ANNOTATION,
    JOB_WORKERS_SUFFIX,
    KEDA_API_VERSION,
    MONITORING_API_VERSION,
)
from catalyst_operator.spec import OcrDeploymentSpec

__all__ = [
    "CHILD_TYPES",
    "CONFIG_HASH_ANNOTATION",
    "BuildContext",
    "ChildType",
    "Scaler",
    "build_children",
    "child_name",
    "config_hash",
    "job_worker_scaler",
    "job_workers_name",
    "owner_reference",
    "pod_template_hash",
    "render_config",
    "rule_groups",
    "service_url",
]

Builder = Callable[[Mapping[str, Any], OcrDeploymentSpec, BuildContext], dict[str, Any]]


@dataclass(frozen=True)
class ChildType:
    """One kind of child the operator may own; `monitoring` kinds exist only with the Prometheus Operator,
    `keda` kinds only with KEDA. `name_suffix` tells the job workers' children (`-workers`) apart."""

    api_version: str
    kind: str
    plural: str
    monitoring: bool = False
    keda: bool = False
    name_suffix: str = ""

    def name(self, instance: str) -> str:
        return child_name(instance, self.kind) + self.name_suffix

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


CHILD_TYPES: tuple[ChildType, ...] = (
    ChildType("v1", "ConfigMap", "configmaps"),
    ChildType("v1", "Service", "services"),
    ChildType("apps/v1", "Deployment", "deployments"),
    ChildType("apps/v1", "Deployment", "deployments", name_suffix=JOB_WORKERS_SUFFIX),
    ChildType("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ChildType("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", name_suffix=JOB_WORKERS_SUFFIX),
    ChildType("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ChildType("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ChildType(MONITORING_API_VERSION, "ServiceMonitor", "servicemonitors", monitoring=True),
    ChildType(MONITORING_API_VERSION, "PodMonitor", "podmonitors", monitoring=True, name_suffix=JOB_WORKERS_SUFFIX),
    ChildType(MONITORING_API_VERSION, "PrometheusRule", "prometheusrules", monitoring=True),
    ChildType(
        KEDA_API_VERSION, "TriggerAuthentication", "triggerauthentications", keda=True, name_suffix=JOB_WORKERS_SUFFIX
    ),
    ChildType(KEDA_API_VERSION, "ScaledObject", "scaledobjects", keda=True, name_suffix=JOB_WORKERS_SUFFIX),
)
"""Every kind of child, in apply order."""


def child_name(instance: str, kind: str) -> str:
    """The name of the child of `kind` for the OcrDeployment `instance`."""
    return configmap_name(instance) if kind == "ConfigMap" else instance


def build_children(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> list[dict[str, Any]]:
    """Every desired child of `cr`, in apply order. Raises `SpecError` if the CR has no uid."""
    builders: list[Builder] = [build_configmap, build_service, build_deployment]
    scaler = job_worker_scaler(spec, ctx)
    if scaler is not None:
        builders.append(build_job_worker_deployment)
    if spec.autoscaling.enabled:
        builders.append(build_autoscaler)
    if scaler in (Scaler.HPA_EXTERNAL, Scaler.HPA_CPU):
        builders.append(build_job_worker_autoscaler)  # never beside a ScaledObject: KEDA makes its own HPA
    if spec.pod_disruption_budget is not None:
        builders.append(build_disruption_budget)
    if spec.network_policy.enabled:
        builders.append(build_network_policy)
    if ctx.monitoring_available and spec.monitoring.service_monitor.enabled:
        builders.append(build_service_monitor)
    if ctx.monitoring_available and scrapes_job_workers(spec):
        builders.append(build_job_worker_pod_monitor)  # the job worker pods are behind no Service
    if ctx.monitoring_available and spec.monitoring.prometheus_rule.enabled:
        builders.append(build_prometheus_rule)
    if scaler is Scaler.KEDA:
        assert spec.job_workers is not None
        if spec.job_workers.autoscaling.trigger == "postgresql":
            builders.append(build_trigger_authentication)
        builders.append(build_scaled_object)
    return [build(cr, spec, ctx) for build in builders]
