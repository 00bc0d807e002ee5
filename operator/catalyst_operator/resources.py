"""Every Kubernetes API resource the operator touches, and the verbs it needs on each.

One table serves three readers: `kube` builds request paths from it, `apply` knows which kinds
it may prune, and the RBAC test checks `manifests/operator/` grants exactly what is listed
here (and that every request the operator sent in the end-to-end tests is covered).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from catalyst_operator import constants


@dataclass(frozen=True)
class ApiResource:
    """A resource type: where its objects live in the API and what kind they are."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"{self.group_version_path}/namespaces/{namespace}/{self.plural}"
        return f"{self.group_version_path}/{self.plural}"

    def object_path(self, namespace: str | None, name: str, subresource: str | None = None) -> str:
        path = f"{self.collection_path(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path

    @property
    def crd_name(self) -> str:
        """The name of the CustomResourceDefinition that serves this kind (`<plural>.<group>`)."""
        return f"{self.plural}.{self.group}"


OCR_DEPLOYMENTS: Final = ApiResource(constants.GROUP, constants.VERSION, constants.KIND, constants.PLURAL)
SECRETS: Final = ApiResource("", "v1", "Secret", "secrets")
EVENTS: Final = ApiResource("", "v1", "Event", "events")

DEPLOYMENTS: Final = ApiResource("apps", "v1", "Deployment", "deployments")
SERVICES: Final = ApiResource("", "v1", "Service", "services")
CONFIG_MAPS: Final = ApiResource("", "v1", "ConfigMap", "configmaps")
HORIZONTAL_POD_AUTOSCALERS: Final = ApiResource(
    "autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"
)
POD_DISRUPTION_BUDGETS: Final = ApiResource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets")
NETWORK_POLICIES: Final = ApiResource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies")
SERVICE_MONITORS: Final = ApiResource(
    constants.MONITORING_GROUP, constants.MONITORING_VERSION, "ServiceMonitor", "servicemonitors"
)
POD_MONITORS: Final = ApiResource(constants.MONITORING_GROUP, constants.MONITORING_VERSION, "PodMonitor", "podmonitors")
PROMETHEUS_RULES: Final = ApiResource(
    constants.MONITORING_GROUP, constants.MONITORING_VERSION, "PrometheusRule", "prometheusrules"
)

MONITORING_RESOURCES: Final = (SERVICE_MONITORS, POD_MONITORS, PROMETHEUS_RULES)
"""Optional kinds: served only when the Prometheus Operator's CRDs are installed."""

SCALED_OBJECTS: Final = ApiResource(constants.KEDA_GROUP, constants.KEDA_VERSION, "ScaledObject", "scaledobjects")
TRIGGER_AUTHENTICATIONS: Final = ApiResource(
    constants.KEDA_GROUP, constants.KEDA_VERSION, "TriggerAuthentication", "triggerauthentications"
)
KEDA_RESOURCES: Final = (TRIGGER_AUTHENTICATIONS, SCALED_OBJECTS)
"""Optional kinds: served only when KEDA's CRDs are installed (the job workers' queue-depth scaler)."""


def external_metric(name: str) -> ApiResource:
    """An External metric as the metrics API lists it in discovery (one "resource" per metric name)."""
    return ApiResource(
        constants.EXTERNAL_METRICS_GROUP, constants.EXTERNAL_METRICS_VERSION, "ExternalMetricValueList", name
    )


CUSTOM_RESOURCE_DEFINITIONS: Final = ApiResource(
    "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False
)
"""Watched by a cluster-wide operator only, to notice the monitoring and KEDA CRDs being installed or removed."""

CHILD_RESOURCES: Final = (
    DEPLOYMENTS,
    SERVICES,
    CONFIG_MAPS,
    HORIZONTAL_POD_AUTOSCALERS,
    POD_DISRUPTION_BUDGETS,
    NETWORK_POLICIES,
    *MONITORING_RESOURCES,
    *KEDA_RESOURCES,
)
"""Every kind an `OcrDeployment` may own. Kinds not in this table are never applied or pruned."""

_BY_API_VERSION_KIND: Final = {(r.api_version, r.kind): r for r in (*CHILD_RESOURCES, OCR_DEPLOYMENTS, SECRETS, EVENTS)}


def resource_for(api_version: str, kind: str) -> ApiResource:
    """The resource of a manifest; a kind outside the table is a programming error, not user input."""
    try:
        return _BY_API_VERSION_KIND[(api_version, kind)]
    except KeyError:
        raise ValueError(f"{kind} ({api_version}) is not a kind the operator manages") from None


@dataclass(frozen=True)
class Permission:
    """One RBAC rule the operator needs: verbs on a resource (or a subresource, `plural/sub`)."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    cluster_scoped: bool = False
    """Granted by the ClusterRole only: a namespaced Role cannot grant a cluster-scoped resource."""


_CHILD_VERBS: Final = ("get", "list", "watch", "create", "patch", "delete")
"""Server-side apply is authorised as `patch`, plus `create` when the object does not exist yet."""

PERMISSIONS: Final = (
    # kopf lists and watches the custom resources, patches its finalizer and bookkeeping annotations.
    Permission(constants.GROUP, constants.PLURAL, ("get", "list", "watch", "patch")),
    Permission(constants.GROUP, f"{constants.PLURAL}/status", ("get", "patch")),
    # Referenced Secrets are read (never written) and watched to notice rotation.
    Permission("", "secrets", ("get", "list", "watch")),
    # kopf posts Kubernetes Events about the custom resources.
    Permission("", "events", ("create",)),
    *(Permission(r.group, r.plural, _CHILD_VERBS) for r in CHILD_RESOURCES),
    # Cluster-wide only: the monitoring and KEDA CRDs' arrival or removal triggers a reconcile at once.
    Permission(CUSTOM_RESOURCE_DEFINITIONS.group, CUSTOM_RESOURCE_DEFINITIONS.plural, ("get", "list", "watch"), True),
)
"""What the operator's own code and kopf need. `manifests/operator/` grants these and no more
(kopf's peering objects are not included: the operator runs `--standalone`). The namespaced
Role grants those without `cluster_scoped`; a namespaced operator does not watch CRDs."""

NAMESPACED_PERMISSIONS: Final = tuple(p for p in PERMISSIONS if not p.cluster_scoped)
"""What the namespaced variant (`rbac-namespaced.yaml`, chart `rbac.scope=namespace`) grants."""
