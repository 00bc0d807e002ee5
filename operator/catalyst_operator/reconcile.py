"""One reconcile of one `OcrDeployment`, top to bottom, callable without kopf running.

Read the custom resource fresh (under a per-resource lock, so concurrent triggers — its own
change, a child's event, a Secret's rotation, the resync timer — queue instead of racing) →
parse the spec → read the referenced Secrets → ask discovery about monitoring → build the
children → apply them (writing only what differs) → compute the status → patch it only when it
changed. The Kubernetes Events worth posting are returned, not posted, so that the caller
(kopf's handlers) owns the side effect and tests can assert them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from catalyst_operator import constants, metrics
from catalyst_operator.apply import Action, ApplyResult, apply_children
from catalyst_operator.builders import (
    BuildContext,
    Scaler,
    build_children,
    job_worker_scaler,
    job_workers_name,
    service_url,
)
from catalyst_operator.events import EventToPost, transition_events
from catalyst_operator.kube import KubeApi, Manifest
from catalyst_operator.labels import selector_labels
from catalyst_operator.resources import (
    CHILD_RESOURCES,
    DEPLOYMENTS,
    HORIZONTAL_POD_AUTOSCALERS,
    KEDA_RESOURCES,
    MONITORING_RESOURCES,
    OCR_DEPLOYMENTS,
    SCALED_OBJECTS,
    resource_for,
)
from catalyst_operator.runtime import KEDA, Runtime
from catalyst_operator.secrets import read_secrets
from catalyst_operator.spec import SpecError, parse_spec, referenced_secrets
from catalyst_operator.status import (
    REMOVABLE_STATUS_KEYS,
    TRUE,
    Observed,
    backlog_from_hpa,
    compute_status,
    condition,
    selector_string,
    status_changed,
)


class Outcome(StrEnum):
    """How a reconcile ended; the `result` label of the reconcile counter."""

    READY = "ready"
    PROGRESSING = "progressing"
    DEGRADED = "degraded"
    SECRET_MISSING = "secret_missing"  # noqa: S105 (a result label, not a credential)
    INVALID_SPEC = "invalid_spec"
    GONE = "gone"
    ERROR = "error"


@dataclass(frozen=True)
class Report:
    outcome: Outcome
    cr: Manifest | None = None
    spec_error: str | None = None
    applied: ApplyResult | None = None
    status_written: bool = False
    events: tuple[EventToPost, ...] = ()


def reconcile(runtime: Runtime, namespace: str, name: str, *, created: bool = False) -> Report:
    """Bring the named `OcrDeployment` and its children in line; see the module docstring.

    `created`: the resource is new (kopf's create), so it owns nothing yet — its children are
    applied without reading them first and no leftovers are looked for.
    """
    started = time.perf_counter()
    with runtime.lock_for(namespace, name):
        try:
            report = _reconcile_locked(runtime, namespace, name, created)
            if report.outcome is not Outcome.GONE:  # a gone resource stays forgotten: nothing to resync
                runtime.reconciled(namespace, name)
        except Exception:
            metrics.RECONCILES.labels(Outcome.ERROR.value).inc()
            raise
        finally:
            metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)
    metrics.RECONCILES.labels(report.outcome.value).inc()
    for child in report.applied.written if report.applied else ():
        metrics.CHILDREN_APPLIED.labels(child.resource.kind, child.action.value).inc()
    if report.status_written:
        metrics.STATUS_WRITES.inc()
    return report


def _reconcile_locked(runtime: Runtime, namespace: str, name: str, created: bool) -> Report:
    api = runtime.api
    cr = api.get(OCR_DEPLOYMENTS.object_path(namespace, name))
    if cr is None or (cr.get("metadata") or {}).get("deletionTimestamp"):
        runtime.forget(namespace, name)  # ownerReferences let the garbage collector take the children
        return Report(Outcome.GONE, cr)
    metadata = cr.get("metadata") or {}
    generation = int(metadata.get("generation") or 1)
    previous = cr.get("status") if isinstance(cr.get("status"), Mapping) else None

    try:
        spec = parse_spec(cr)
    except SpecError as error:
        return _invalid_spec(runtime, cr, previous, error)

    secrets = read_secrets(api, namespace, referenced_secrets(spec))
    runtime.secret_refs.remember(namespace, name, secrets.seen)
    monitoring_available = runtime.discovery.monitoring_available()
    runtime.record_monitoring(namespace, name, requested=spec.monitoring.any_enabled, available=monitoring_available)
    keda_available = runtime.discovery.keda_available()
    scales_workers = spec.job_workers is not None and spec.job_workers.autoscaling.enabled
    runtime.record_optional(KEDA, namespace, name, requested=scales_workers, available=keda_available)
    context = BuildContext(
        default_image=runtime.settings.default_image,
        monitoring_available=monitoring_available,
        secret_hash=secrets.digest,
        keda_available=keda_available,
        # Asked only when it decides something: the fallback HPA's metric.
        backlog_metric_available=scales_workers and not keda_available and runtime.discovery.backlog_metric_available(),
    )
    scaler = job_worker_scaler(spec, context)
    try:
        desired = build_children(cr, spec, context)
    except SpecError as error:  # what only the builders can judge (e.g. a resource without a uid)
        return _invalid_spec(runtime, cr, previous, error)
    selector = selector_string(selector_labels(spec.name))
    base = Observed(
        namespace=namespace,
        generation=generation,
        monitoring_requested=spec.monitoring.any_enabled,
        monitoring_available=monitoring_available,
        service_url=service_url(spec),
        selector=selector,
        desired_replicas=None if spec.autoscaling.enabled else spec.replicas,
        scaler=scaler.value if scaler is not None else None,
        keda_available=keda_available,
    )

    if secrets.missing:
        # Rolling out pods that cannot start helps nobody: keep what runs, report, wait for the Secret.
        live_deployment = runtime.cached_child(DEPLOYMENTS, namespace, spec.name) or api.get(
            DEPLOYMENTS.object_path(namespace, spec.name)
        )
        observed = replace(base, missing_secrets=secrets.missing, deployment=live_deployment)
        if scaler is not None:
            workers = job_workers_name(spec.name)
            live_workers = runtime.cached_child(DEPLOYMENTS, namespace, workers) or api.get(
                DEPLOYMENTS.object_path(namespace, workers)
            )
            observed = replace(observed, job_workers=live_workers)
        new_status = compute_status(observed, previous, runtime.clock())
        written = _write_status(api, namespace, name, new_status, previous)
        events = transition_events(previous, new_status, created=(), updated=())
        return Report(Outcome.SECRET_MISSING, cr, status_written=written, events=events)

    for manifest in desired:
        runtime.remember_desired(namespace, manifest)
    candidates = [
        r
        for r in CHILD_RESOURCES
        if (monitoring_available or r not in MONITORING_RESOURCES) and (keda_available or r not in KEDA_RESOURCES)
    ]
    wanted = [(resource_for(str(m["apiVersion"]), str(m["kind"])), str(m["metadata"]["name"])) for m in desired]
    applied = apply_children(
        api,
        namespace,
        desired,
        owner_uid=str(metadata.get("uid") or ""),
        owner_labels={constants.LABEL_INSTANCE: name, constants.LABEL_MANAGED_BY: constants.OPERATOR_NAME},
        prunable=() if created else runtime.kinds_to_prune(namespace, name, candidates, wanted),
        cached=lambda resource, child_name: runtime.cached_child(resource, namespace, child_name),
        new_owner=created,
    )
    runtime.observe_applied(namespace, applied)
    runtime.record_owned(
        namespace, name, ((child.resource, child.name) for child in applied.children if child.live is not None)
    )
    for child in applied.children:
        if child.live is None:
            runtime.forget_child((child.resource, namespace, child.name))
    deployment = applied.live(DEPLOYMENTS, spec.name)
    workers = job_workers_name(spec.name)
    job_workers = applied.live(DEPLOYMENTS, workers)
    scaled_object = applied.live(SCALED_OBJECTS, workers)
    for live in (deployment, job_workers, scaled_object):
        if live is not None:
            runtime.saw_status(live)

    observed = replace(
        base,
        deployment=deployment,
        job_workers=job_workers,
        scaled_object=scaled_object,
        backlog=_backlog(api, namespace, scaler, scaled_object, applied.live(HORIZONTAL_POD_AUTOSCALERS, workers)),
    )
    new_status = compute_status(observed, previous, runtime.clock())
    written = _write_status(api, namespace, name, new_status, previous)
    made = [c for c in applied.written if c.action is Action.CREATED]
    changed = [c for c in applied.written if c.action is not Action.CREATED]
    events = transition_events(
        previous,
        new_status,
        created=[f"{c.resource.kind} {c.name}" for c in made],
        updated=[f"{c.action.value} {c.resource.kind} {c.name}" for c in changed],
    )
    return Report(_outcome(new_status), cr, applied=applied, status_written=written, events=events)


def _backlog(
    api: KubeApi,
    namespace: str,
    scaler: Scaler | None,
    scaled_object: Manifest | None,
    own_hpa: Manifest | None,
) -> int | None:
    """The job backlog as the workers' scaler last measured it: KEDA's HPA (named in the ScaledObject's
    status), or our External-metric HPA; None with a CPU HPA or before a first measurement."""
    if scaler is Scaler.HPA_EXTERNAL:
        return backlog_from_hpa(own_hpa)
    if scaler is Scaler.KEDA and scaled_object is not None:
        hpa_name = ((scaled_object.get("status") or {}).get("hpaName")) or None
        if hpa_name:
            return backlog_from_hpa(api.get(HORIZONTAL_POD_AUTOSCALERS.object_path(namespace, str(hpa_name))))
    return None


def _invalid_spec(runtime: Runtime, cr: Manifest, previous: Mapping[str, Any] | None, error: SpecError) -> Report:
    """Say so in the status (and, on a change, in a Warning Event); touch no child."""
    metadata = cr.get("metadata") or {}
    namespace, name = str(metadata["namespace"]), str(metadata["name"])
    runtime.record_monitoring(namespace, name, requested=False, available=False)  # nothing to build until fixed
    generation = int(metadata.get("generation") or 1)
    observed = Observed(namespace=namespace, generation=generation, spec_error=str(error))
    new_status = compute_status(observed, previous, runtime.clock())
    written = _write_status(runtime.api, namespace, name, new_status, previous)
    events = transition_events(previous, new_status, created=(), updated=())
    return Report(Outcome.INVALID_SPEC, cr, spec_error=str(error), status_written=written, events=events)


def _write_status(
    api: KubeApi, namespace: str, name: str, new: Mapping[str, Any], old: Mapping[str, Any] | None
) -> bool:
    if not status_changed(new, old):
        return False
    patch: dict[str, Any] = dict(new)
    for key in REMOVABLE_STATUS_KEYS:
        if old and key in old and key not in new:
            patch[key] = None  # merge patch: null removes
    api.merge_patch(OCR_DEPLOYMENTS.object_path(namespace, name, "status"), {"status": patch})
    return True


def _outcome(status: Mapping[str, Any]) -> Outcome:
    if (condition(status, constants.CONDITION_DEGRADED) or {}).get("status") == TRUE:
        return Outcome.DEGRADED
    if (condition(status, constants.CONDITION_READY) or {}).get("status") == TRUE:
        return Outcome.READY
    return Outcome.PROGRESSING
