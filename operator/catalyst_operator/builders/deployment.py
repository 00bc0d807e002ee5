"""The Deployment that runs the OCR service, hardened and wired to its config and Secrets.

Pods run as uid 1000 with a read-only root filesystem (emptyDirs on /tmp and on the data dir),
no capabilities, seccomp RuntimeDefault and no service-account token: the service needs no API
access. Settings come from the ConfigMap (envFrom); credentials come straight from the user's
Secrets, the URLs through secretKeyRef and the API keys as a mounted file the service re-reads,
so a rotated key applies without a restart. With `spec.jobWorkers` a second Deployment of the
same pod shape runs `python -m ocr_service.jobs` instead (the same port and probes, serving only
the probes and `/metrics`; no API keys; its own resources and placement, selected by component
`job-worker`). `enableServiceLinks` is
off because a Service named `ocr` would otherwise inject `OCR_PORT=tcp://...` and clash with the service's own settings.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from catalyst_operator.builders.configmap import config_hash, configmap_name, render_config
from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.meta import child_metadata, image_of
from catalyst_operator.constants import (
    COMPONENT_JOB_WORKER,
    COMPONENT_SERVER,
    CONFIG_HASH_ANNOTATION,
    CONTAINER_NAME,
    JOB_WORKERS_SUFFIX,
    PORT_NAME,
)
from catalyst_operator.labels import child_labels, selector_labels
from catalyst_operator.spec import OcrDeploymentSpec, Placement, SecretRef, effective_workers, service_default
from ocr_service.contract import (
    CONTAINER_DATA_DIR,
    HTTP_PORT,
    JOB_WORKER_COMMAND,
    LIVENESS_PATH,
    READINESS_PATH,
    EnvVar,
)

RUN_AS_USER = 1000
API_KEYS_DIR = "/etc/catalyst-ocr/api-keys"
SHUTDOWN_MARGIN_SECONDS = 10
"""Extra time past the service's own shutdown grace before the kubelet kills the container."""


def _secret_env(name: str, ref: SecretRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _env(spec: OcrDeploymentSpec, *, job_worker: bool = False) -> list[dict[str, Any]]:
    """Operator-set variables first; a user's `spec.env` entry of the same name replaces ours in place.

    With `spec.jobWorkers` the API pods claim no job pages (the workers do); the workers wait for
    their page up to the job time limit on SIGTERM (see `termination_grace_seconds`).
    """
    resources = spec.job_workers.resources if job_worker and spec.job_workers else None
    env: list[dict[str, Any]] = [
        {"name": "OMP_THREAD_LIMIT", "value": "1"},
        {"name": str(EnvVar.WORKERS), "value": str(effective_workers(spec, resources))},
    ]
    if job_worker:
        env.append({"name": str(EnvVar.SHUTDOWN_GRACE_SECONDS), "value": str(spec.ocr.timeout_seconds)})
    elif spec.job_workers is not None:
        env.append({"name": str(EnvVar.JOB_WORKERS_ENABLED), "value": "false"})
    if spec.database is not None:
        env.append(_secret_env(EnvVar.DATABASE_URL, spec.database))
    if spec.redis is not None:
        env.append(_secret_env(EnvVar.REDIS_URL, spec.redis))
    if spec.api_keys is not None and not job_worker:
        env.append({"name": str(EnvVar.API_KEYS_FILE), "value": f"{API_KEYS_DIR}/{spec.api_keys.key}"})
    by_name = {item["name"]: index for index, item in enumerate(env)}
    for extra in spec.env:
        item = copy.deepcopy(dict(extra))
        if item["name"] in by_name:
            env[by_name[item["name"]]] = item
        else:
            env.append(item)
    return env


def _volumes(spec: OcrDeploymentSpec, *, job_worker: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "data", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the container's own scratch space
        {"name": "data", "mountPath": CONTAINER_DATA_DIR},
    ]
    if spec.api_keys is not None and not job_worker:
        # A whole-directory mount (not subPath): the kubelet updates it in place when the Secret rotates.
        volumes.append(
            {
                "name": "api-keys",
                "secret": {
                    "secretName": spec.api_keys.name,
                    "items": [{"key": spec.api_keys.key, "path": spec.api_keys.key}],
                    "defaultMode": 0o440,
                },
            }
        )
        mounts.append({"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True})
    return volumes, mounts


def _probes() -> dict[str, Any]:
    def http_get(path: str) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": PORT_NAME}}

    return {
        # Loading Tesseract and its models may take a while on a cold node: allow two minutes.
        "startupProbe": {**http_get(LIVENESS_PATH), "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 24},
        "livenessProbe": {**http_get(LIVENESS_PATH), "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        "readinessProbe": {**http_get(READINESS_PATH), "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
    }


def _spread_constraints(spec: OcrDeploymentSpec, placement: Placement, component: str) -> list[dict[str, Any]]:
    """The CR's constraints; one without a labelSelector would count no pods at all, so it gets these pods'."""
    constraints = copy.deepcopy([dict(item) for item in placement.topology_spread_constraints])
    for constraint in constraints:
        constraint.setdefault("labelSelector", {"matchLabels": selector_labels(spec.name, component)})
    return constraints


def _pod_spec(spec: OcrDeploymentSpec, ctx: BuildContext, *, job_worker: bool = False) -> dict[str, Any]:
    volumes, mounts = _volumes(spec, job_worker=job_worker)
    workers = spec.job_workers if job_worker else None
    resources = workers.resources if workers is not None else spec.resources
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image_of(spec, ctx),
        "imagePullPolicy": spec.image_pull_policy,
    }
    if job_worker:
        # A worker-only replica serves the same probes and /metrics on the same port, and no API.
        container["command"] = list(JOB_WORKER_COMMAND)
    container["ports"] = [{"name": PORT_NAME, "containerPort": HTTP_PORT, "protocol": "TCP"}]
    container.update(
        {
            "envFrom": [{"configMapRef": {"name": configmap_name(spec.name)}}],
            "env": _env(spec, job_worker=job_worker),
            "resources": {section: dict(items) for section, items in resources.items()},
            **_probes(),
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": mounts,
        }
    )
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": termination_grace_seconds(spec, job_worker=job_worker),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    placement = workers.placement if workers is not None else spec.placement
    component = COMPONENT_JOB_WORKER if job_worker else COMPONENT_SERVER
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in spec.image_pull_secrets]
    if placement.node_selector:
        pod["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod["tolerations"] = copy.deepcopy([dict(t) for t in placement.tolerations])
    if placement.affinity:
        pod["affinity"] = copy.deepcopy(dict(placement.affinity))
    if placement.topology_spread_constraints:
        pod["topologySpreadConstraints"] = _spread_constraints(spec, placement, component)
    if placement.priority_class_name:
        pod["priorityClassName"] = placement.priority_class_name
    return pod


def termination_grace_seconds(spec: OcrDeploymentSpec, *, job_worker: bool = False) -> int:
    """How long the kubelet waits after SIGTERM: the service's own grace plus a margin.

    A job worker's grace is the job time limit (`spec.ocr.timeoutSeconds`): a page in progress
    may finish rather than be recognised again elsewhere; past it the page is released.
    """
    if job_worker:
        return spec.ocr.timeout_seconds + SHUTDOWN_MARGIN_SECONDS
    return int(float(service_default(EnvVar.SHUTDOWN_GRACE_SECONDS))) + SHUTDOWN_MARGIN_SECONDS


def pod_template_hash(spec: OcrDeploymentSpec, ctx: BuildContext) -> str:
    """The value of the pod template's `CONFIG_HASH_ANNOTATION`."""
    return config_hash(render_config(spec), ctx.secret_hash)


def build_deployment(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    """The API pods (and, without `spec.jobWorkers`, the job workers too)."""
    return _deployment(cr, spec, ctx, job_worker=False)


def build_job_worker_deployment(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    """`<name>-workers`: the same image running only job workers, scaled apart from the API."""
    if spec.job_workers is None:
        raise ValueError("build_job_worker_deployment needs spec.jobWorkers")
    return _deployment(cr, spec, ctx, job_worker=True)


def job_workers_name(instance: str) -> str:
    return f"{instance}{JOB_WORKERS_SUFFIX}"


def _deployment(
    cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext, *, job_worker: bool
) -> dict[str, Any]:
    component = COMPONENT_JOB_WORKER if job_worker else COMPONENT_SERVER
    name = job_workers_name(spec.name) if job_worker else spec.name
    own_labels = child_labels(spec.name, component, image_of(spec, ctx), ctx.operator_name)
    pod_labels = {**spec.pod_labels, **own_labels}
    pod_annotations = {**spec.pod_annotations, CONFIG_HASH_ANNOTATION: pod_template_hash(spec, ctx)}
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(spec.name, component)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": _pod_spec(spec, ctx, job_worker=job_worker),
        },
    }
    if job_worker:
        assert spec.job_workers is not None
        if not spec.job_workers.autoscaling.enabled:
            deployment_spec = {"replicas": spec.job_workers.replicas, **deployment_spec}
    elif not spec.autoscaling.enabled:
        # With an HPA the replica count belongs to it; setting it here would fight every scale-up.
        deployment_spec = {"replicas": spec.replicas, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(cr, spec, ctx, name, component),
        "spec": deployment_spec,
    }
