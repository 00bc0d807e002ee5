"""ServiceMonitor, PodMonitor and PrometheusRule (monitoring.coreos.com/v1) for one OcrDeployment.

The ServiceMonitor scrapes the API pods through their Service. The job worker pods
(`spec.jobWorkers`) are behind no Service, so with `monitoring.serviceMonitor` enabled they get a
PodMonitor `NAME-workers` with the same interval and labels; their series carry
`job="NAME-workers"`, apart from the API pods' `job="NAME"`, so the alert rules (written for the
API: `CatalystOcrDown` when no API pod is up) keep their meaning.

Built only when the cluster serves the Prometheus Operator's API and the CR enables them. The
alert rules are read from `assets/prometheus-rules.yaml`, the one file the compose stack's
Prometheus mounts too, and scoped to this instance by rewriting their `job` matcher. With autoscaled job workers the
PrometheusRule gains one more group of the operator's own (`job_worker_rule_group`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.deployment import job_workers_name
from catalyst_operator.builders.meta import child_metadata
from catalyst_operator.constants import COMPONENT_JOB_WORKER, COMPONENT_MONITORING, MONITORING_API_VERSION, PORT_NAME
from catalyst_operator.labels import selector_labels
from catalyst_operator.spec import OcrDeploymentSpec
from ocr_service.contract import BACKLOG_METRIC, METRICS_PATH

RULES_ASSET = "prometheus-rules.yaml"
RULES_JOB_MATCHER = 'job="catalyst-ocr"'
"""The matcher every rule expression uses; replaced per instance (see the asset's header)."""


@functools.cache
def _parsed_rule_groups() -> list[dict[str, Any]]:
    """Read and parse the asset once per process; callers get copies."""
    text = resources.files("catalyst_operator").joinpath("assets", RULES_ASSET).read_text(encoding="utf-8")
    groups: list[dict[str, Any]] = yaml.safe_load(text)["groups"]
    return groups


def rule_groups() -> list[dict[str, Any]]:
    """The alert rule groups exactly as written in the asset (compose semantics), as a fresh copy."""
    return copy.deepcopy(_parsed_rule_groups())


def scoped_rule_groups(namespace: str, job: str) -> list[dict[str, Any]]:
    """The rule groups with every expression limited to one instance's series."""
    groups = rule_groups()
    matcher = f'namespace="{namespace}", job="{job}"'
    for group in groups:
        group["name"] = f"{group['name']}.{namespace}.{job}"
        for rule in group["rules"]:
            expr = rule["expr"]
            if RULES_JOB_MATCHER not in expr:
                raise ValueError(f"rule {rule.get('alert')} does not select its series with {RULES_JOB_MATCHER}")
            rule["expr"] = expr.replace(RULES_JOB_MATCHER, matcher)
    return groups


def scrapes_job_workers(spec: OcrDeploymentSpec) -> bool:
    """The job worker pods get their PodMonitor (and its alert) whenever the API pods get a ServiceMonitor."""
    return spec.job_workers is not None and spec.monitoring.service_monitor.enabled


def _scrape_endpoint(spec: OcrDeploymentSpec) -> dict[str, Any]:
    """One pod's /metrics on the http port, as `monitoring.serviceMonitor` asks: the same for both monitors."""
    monitor = spec.monitoring.service_monitor
    return {
        "port": PORT_NAME,
        "path": METRICS_PATH,
        "scheme": "http",
        "interval": monitor.interval,
        "scrapeTimeout": monitor.scrape_timeout,
    }


def build_service_monitor(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    monitor = spec.monitoring.service_monitor
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": child_metadata(cr, spec, ctx, spec.name, COMPONENT_MONITORING, extra_labels=monitor.labels),
        "spec": {
            "selector": {"matchLabels": selector_labels(spec.name)},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "endpoints": [_scrape_endpoint(spec)],
        },
    }


def build_job_worker_pod_monitor(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    monitor = spec.monitoring.service_monitor
    name = job_workers_name(spec.name)
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PodMonitor",
        "metadata": child_metadata(cr, spec, ctx, name, COMPONENT_MONITORING, extra_labels=monitor.labels),
        "spec": {
            "selector": {"matchLabels": selector_labels(spec.name, COMPONENT_JOB_WORKER)},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "podMetricsEndpoints": [
                {
                    **_scrape_endpoint(spec),
                    "relabelings": [{"action": "replace", "targetLabel": "job", "replacement": name}],
                }
            ],
        },
    }


def job_worker_rule_group(spec: OcrDeploymentSpec) -> dict[str, Any] | None:
    """The autoscaled job workers' alert, built here rather than in the asset: it needs what only the
    operator knows (the workers' Deployment and maxReplicas) and kube-state-metrics' replica counts,
    which the compose stack has no equivalent of."""
    if spec.job_workers is None or not spec.job_workers.autoscaling.enabled:
        return None
    scaling = spec.job_workers.autoscaling
    own = f'namespace="{spec.namespace}", job="{spec.name}"'
    workers = f'namespace="{spec.namespace}", deployment="{job_workers_name(spec.name)}"'
    return {
        "name": f"catalyst-ocr-autoscaling.{spec.namespace}.{spec.name}",
        "rules": [
            {
                "alert": "CatalystOcrJobBacklogGrowingAtMaxWorkers",
                "expr": (
                    f"deriv(max({BACKLOG_METRIC}{{{own}}})[15m:1m]) > 0\n"
                    f"and on() max(kube_deployment_status_replicas{{{workers}}}) >= {scaling.max_replicas}"
                ),
                "for": "15m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Catalyst OCR job backlog keeps growing with every job worker running",
                    "description": (
                        f"{spec.namespace}/{spec.name}: the job backlog (pages queued and in progress) has grown "
                        f"for 15 minutes while {job_workers_name(spec.name)} runs at maxReplicas "
                        f"({scaling.max_replicas}). Raise spec.jobWorkers.autoscaling.maxReplicas, give the "
                        "workers more CPU, or check the cluster has room for more pods."
                    ),
                },
            }
        ],
    }


def job_worker_health_rule_group(spec: OcrDeploymentSpec) -> dict[str, Any] | None:
    """An alert on the job worker pods themselves, which the asset's rules (job=NAME) do not see: their
    series are `job="NAME-workers"` (the PodMonitor), so only while that PodMonitor exists."""
    if not scrapes_job_workers(spec):
        return None
    name = job_workers_name(spec.name)
    return {
        "name": f"catalyst-ocr-job-workers.{spec.namespace}.{spec.name}",
        "rules": [
            {
                "alert": "CatalystOcrJobWorkerDown",
                "expr": f'up{{namespace="{spec.namespace}", job="{name}"}} == 0',
                "for": "5m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "A Catalyst OCR job worker pod does not answer /metrics",
                    "description": (
                        f"{spec.namespace}/{name}: the pod {{{{ $labels.pod }}}} has not answered its /metrics "
                        "scrape for 5 minutes: its event loop is stuck, it is crash-looping or its port is "
                        "blocked. Its pages return to the queue when their leases expire; see "
                        f"kubectl -n {spec.namespace} logs {{{{ $labels.pod }}}}."
                    ),
                },
            }
        ],
    }


def build_prometheus_rule(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    rule = spec.monitoring.prometheus_rule
    groups = scoped_rule_groups(spec.namespace, spec.name)
    for extra in (job_worker_rule_group(spec), job_worker_health_rule_group(spec)):
        if extra is not None:
            groups.append(extra)
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": child_metadata(cr, spec, ctx, spec.name, COMPONENT_MONITORING, extra_labels=rule.labels),
        "spec": {"groups": groups},
    }
