"""kopf's entry points: thin handlers that hand every trigger to `reconcile.reconcile`.

Why change handlers (create/update/resume) plus a resync timer rather than one `on.event`:
kopf then retries a failing reconcile with back-off, stops for good on `kopf.PermanentError`
(an invalid spec: condition + Warning event, no endless loop), and does not re-run the
handler for our own status writes (they are not part of the spec it diffs). The timer re-checks
every resource periodically — that is how any missed event is healed. Children and Secrets are
watched too, so drift (a child deleted or edited by hand), a Deployment's progress and a Secret's
rotation or late creation trigger the same reconcile promptly. All triggers funnel into one function that
re-reads the resource under a per-resource lock, so they queue instead of racing.

A cluster-wide operator also watches the Prometheus Operator's and KEDA's CRDs (`register_monitoring_crd_watch`,
registered by the command line only when kopf runs cluster-wide), so ServiceMonitors and ScaledObjects appear
within seconds of installing them; a namespaced one may not watch CRDs and relies on the resync timer for that.

kopf's bookkeeping lives under the operator's own prefix (`ocr.catalyst.dev/...`): progress and
last-handled-configuration annotations — no `kopf.zalando.org` keys on user objects.

No finalizer: children are owned through ownerReferences and garbage-collected, so deleting an
OcrDeployment needs no operator — with one, a deletion hung whenever the operator was down. kopf
adds a finalizer only for mandatory deletion handlers, daemons and timers; there are none (the
periodic resync is `resync.ResyncLoop`, not a `kopf.timer`). Earlier versions did put
`ocr.catalyst.dev/finalizer` on every object; kopf removes the finalizer named in its settings from
any object whose handlers no longer need it, on the first event it handles for it (the resume
listing of an upgraded operator), so that name stays configured as `LEGACY_FINALIZER`.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from typing import Any, Final

import kopf

from catalyst_operator import constants, events, kube, metrics, watch_resilience
from catalyst_operator.discovery import ApiDiscovery
from catalyst_operator.reconcile import Report, reconcile
from catalyst_operator.resources import (
    CHILD_RESOURCES,
    CUSTOM_RESOURCE_DEFINITIONS,
    KEDA_RESOURCES,
    MONITORING_RESOURCES,
    SECRETS,
    ApiResource,
)
from catalyst_operator.resync import ResyncLoop
from catalyst_operator.runtime import KEDA, MONITORING, Runtime, owner_of
from catalyst_operator.secrets import secret_digest
from catalyst_operator.settings import OperatorSettings
from catalyst_operator.status import TRUE, condition

RUNTIME_KEY: Final = "runtime"
"""Where the operator's `Runtime` lives in kopf's memo (tests put their own there before start)."""

RESYNC_KEY: Final = "resync"
"""Where the running `ResyncLoop` lives in kopf's memo (started at start-up, stopped at clean-up)."""

LEGACY_FINALIZER: Final = f"{constants.GROUP}/finalizer"
"""The finalizer earlier operator versions put on every OcrDeployment; kopf strips it (see above)."""

_OCR: Final = (constants.GROUP, constants.VERSION, constants.PLURAL)
_MANAGED: Final = {constants.LABEL_MANAGED_BY: constants.OPERATOR_NAME}

logger = logging.getLogger(__name__)

watch_resilience.install()  # a watched kind whose CRD is removed must not stop the operator


def build_runtime(settings: OperatorSettings, api: kube.KubeApi) -> Runtime:
    return Runtime(settings=settings, api=api, discovery=ApiDiscovery(api, settings.discovery_ttl_seconds))


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """kopf settings chosen on purpose (see docs/operator-operations.md)."""
    # No handler needs a finalizer, so kopf adds none and removes this one (the old versions') where found.
    kopf_settings.persistence.finalizer = LEGACY_FINALIZER
    # Our own annotation prefix: nothing named kopf.zalando.org on user objects.
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=constants.GROUP)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=constants.GROUP, key="last-handled-configuration"
    )
    # Ask the server to end each watch after a while and give up on a silent connection a bit later,
    # so a half-dead connection (load balancer, API server restart) cannot stall the operator forever.
    kopf_settings.watching.server_timeout = settings.watch_server_timeout
    kopf_settings.watching.client_timeout = settings.watch_client_timeout
    kopf_settings.watching.connect_timeout = 30
    kopf_settings.networking.request_timeout = 60
    # Our own Events are explicit; of kopf's log lines only warnings and errors become Events.
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.posting.reporting_component = constants.OPERATOR_NAME
    kopf_settings.posting.reporting_instance = socket.gethostname()  # the pod's name in a cluster
    kopf_settings.posting.event_name_prefix = f"{constants.OPERATOR_NAME}-"
    # Sync handlers run in this pool; the per-resource lock keeps one reconcile per resource at a time.
    kopf_settings.execution.max_workers = 8


def runtime_of(memo: Mapping[str, Any]) -> Runtime:
    runtime = memo.get(RUNTIME_KEY)
    if not isinstance(runtime, Runtime):
        raise kopf.PermanentError("the operator runtime was not initialised by the startup handler")
    return runtime


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if not isinstance(memo.get(RUNTIME_KEY), Runtime):
        operator_settings = OperatorSettings.from_env()
        try:
            configuration = kube.load_configuration()
        except kube.CredentialsError as error:
            raise kopf.PermanentError(str(error)) from error  # stops the operator: nothing to talk to
        memo[RUNTIME_KEY] = build_runtime(operator_settings, kube.KubeApi(configuration))
        metrics.serve(operator_settings.metrics_port, operator_settings.metrics_address)
    runtime = runtime_of(memo)
    configure_kopf(settings, runtime.settings)
    memo[RESYNC_KEY] = ResyncLoop(runtime, lambda namespace, name: _resync(runtime, namespace, name)).start()


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    loop = memo.get(RESYNC_KEY)
    if isinstance(loop, ResyncLoop):
        loop.stop()


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf talks to the very cluster (and with the credentials) the official client was given."""
    return kube.connection_info(runtime_of(memo).api.configuration)


@kopf.on.resume(*_OCR)
@kopf.on.create(*_OCR)
@kopf.on.update(*_OCR)
def reconcile_on_change(namespace: str | None, name: str, memo: Any, reason: str, **_: Any) -> None:
    report = _reconcile_and_post(
        runtime_of(memo), namespace or "default", name, f"{reason} of the resource", created=reason == "create"
    )
    if report.spec_error is not None:
        raise kopf.PermanentError(report.spec_error)


def _resync(runtime: Runtime, namespace: str, name: str) -> None:
    if runtime.due_for_resync(namespace, name):  # an event may have reconciled it since the loop asked
        _reconcile_and_post(runtime, namespace, name, "resync timer")


def on_child_event(type: str, body: kopf.Body, memo: Any, namespace: str | None, param: Any = None, **_: Any) -> None:
    """A child changed: reconcile its owner if this is drift or Deployment progress, not our own echo."""
    runtime = runtime_of(memo)
    owner = owner_of(body)
    if owner is None or namespace is None or not isinstance(param, ApiResource):
        return
    with runtime.lock_for(namespace, owner):  # judged after any reconcile in flight has recorded its writes
        runtime.observe_child(param, type, body)
        needed = runtime.child_needs_reconcile(param, type, body)
    if needed:
        _reconcile_and_post(runtime, namespace, owner, f"{type} of {param.kind} {body.get('metadata', {}).get('name')}")


for _resource in CHILD_RESOURCES:
    kopf.on.event(
        group=_resource.group,
        version=_resource.version,
        plural=_resource.plural,
        labels=_MANAGED,
        id=f"child-{_resource.plural}",
        param=_resource,
    )(on_child_event)


@kopf.on.event(group=SECRETS.group, version=SECRETS.version, plural=SECRETS.plural)
def on_secret_event(type: str, body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """A Secret appeared, rotated or vanished: reconcile the resources that read something else before."""
    if namespace is None:
        return
    runtime = runtime_of(memo)
    digest = None if type == "DELETED" else secret_digest(body)
    for owner in runtime.secret_refs.owners_to_reconcile(namespace, name, digest):
        _reconcile_and_post(runtime, namespace, owner, f"{type or 'event'} of Secret {name}")


MONITORING_CRDS: Final = {resource.crd_name: resource for resource in MONITORING_RESOURCES}
"""The CRDs whose arrival or removal changes what an OcrDeployment asking for monitoring gets."""
KEDA_CRDS: Final = {resource.crd_name: resource for resource in KEDA_RESOURCES}
"""The CRDs whose arrival or removal changes what scales an OcrDeployment's job workers."""
OPTIONAL_CRDS: Final = {
    **{crd: (MONITORING, resource) for crd, resource in MONITORING_CRDS.items()},
    **{crd: (KEDA, resource) for crd, resource in KEDA_CRDS.items()},
}

DISCOVERY_CATCH_UP_SECONDS: Final = 10.0
"""How long a CRD event waits for API discovery to show the change before reconciling anyway."""


def on_monitoring_crd_event(type: str | None, body: kopf.Body, name: str, memo: Any, **_: Any) -> None:
    """A monitoring (or KEDA) CRD became Established or was deleted: reconcile, now, whoever that changes.

    Which resources: those whose spec needs that API (monitoring; job worker autoscaling) and whose
    last reconcile saw the other answer (`Runtime.optional_outdated`) — the only ones whose children
    or MonitoringReady/AutoscalingReady can change; everything else would be a quiet reconcile. They
    go through the resync timer's path (`_reconcile_and_post`), one after another under their
    per-resource locks. A CRD that is created but not yet Established is not served: its Established
    update follows. The initial listing (type None) counts too: a CRD established between the
    start-up reconciles and the watch's start would otherwise wait for the resync timer.
    """
    if type != "DELETED" and not is_established(body):
        return
    runtime = runtime_of(memo)
    feature, resource = OPTIONAL_CRDS[name]
    served = type != "DELETED"
    if not runtime.discovery.wait_until(resource, served=served, within=DISCOVERY_CATCH_UP_SECONDS):
        logger.warning("CRD %s: %s, but API discovery has not caught up; the resync timer will", name, type)
    discovery = runtime.discovery
    available = discovery.monitoring_available() if feature == MONITORING else discovery.keda_available()
    for namespace, owner in runtime.optional_outdated(feature, available):
        if runtime.saw_optional(feature, namespace, owner) is available:
            continue  # reconciled meanwhile (the other CRD's event, a change): nothing left to do
        _reconcile_and_post(runtime, namespace, owner, f"{type or 'listing'} of CRD {name}")


def is_established(crd: Mapping[str, Any]) -> bool:
    """Whether the API server serves the CRD's resource (its `Established` condition is True)."""
    return (condition(crd.get("status"), "Established") or {}).get("status") == TRUE


def _is_monitoring_crd(name: str, **_: Any) -> bool:
    return name in OPTIONAL_CRDS


def register_monitoring_crd_watch(registry: kopf.OperatorRegistry) -> None:
    """Watch the monitoring and KEDA CRDs — only for an operator allowed to (cluster-wide, see `cli`).

    Not a decorator at import: `customresourcedefinitions` are cluster-scoped, and the namespaced
    Role cannot grant them; kopf would retry the forbidden watch, log errors and never serve it. Call it
    once per registry (twice, every event would be handled twice).
    """
    kopf.on.event(
        CUSTOM_RESOURCE_DEFINITIONS.group,
        CUSTOM_RESOURCE_DEFINITIONS.version,
        CUSTOM_RESOURCE_DEFINITIONS.plural,
        id="monitoring-crds",
        registry=registry,
        when=_is_monitoring_crd,
    )(on_monitoring_crd_event)


def _reconcile_and_post(runtime: Runtime, namespace: str, name: str, trigger: str, *, created: bool = False) -> Report:
    logger.debug("reconciling %s/%s (trigger: %s)", namespace, name, trigger)
    report = reconcile(runtime, namespace, name, created=created)
    if report.cr is not None and report.events:
        events.post(report.cr, report.events)
    if report.applied is not None and report.applied.written:
        logger.info(
            "%s/%s: %s",
            namespace,
            name,
            ", ".join(f"{c.action.value} {c.resource.kind} {c.name}" for c in report.applied.written),
        )
    return report
