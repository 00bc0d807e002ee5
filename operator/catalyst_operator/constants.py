"""Names the operator shares with the cluster: the CRD's identity, labels and annotations.

Everything that must agree between the CRD manifest, the builders, the runtime handlers and
the tests is spelled once here. The service's own names (port, probe paths, env vars) are not
repeated: they come from `ocr_service.contract`.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "ocr.catalyst.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "OcrDeployment"
PLURAL: Final = "ocrdeployments"
SINGULAR: Final = "ocrdeployment"
SHORT_NAME: Final = "ocrd"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

ANNOTATION_PREFIX: Final = f"{GROUP}/"
"""Prefix of every annotation (and of kopf's own bookkeeping) the operator writes."""
CONFIG_HASH_ANNOTATION: Final = f"{ANNOTATION_PREFIX}config-hash"
"""Pod-template annotation: hash of the rendered config and the referenced Secrets' data."""

OPERATOR_NAME: Final = "catalyst-ocr-operator"
APP_NAME: Final = "catalyst-ocr"

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_VERSION: Final = "app.kubernetes.io/version"
SELECTOR_LABEL_KEYS: Final = (LABEL_NAME, LABEL_INSTANCE, LABEL_COMPONENT)
"""Labels the Deployment's selector uses: users may not override them through `podLabels`."""

COMPONENT_SERVER: Final = "server"
COMPONENT_MONITORING: Final = "monitoring"
COMPONENT_JOB_WORKER: Final = "job-worker"
JOB_WORKERS_SUFFIX: Final = "-workers"
"""The job worker Deployment (and what scales it) is named `<instance>-workers`."""

CONTAINER_NAME: Final = "ocr"
PORT_NAME: Final = "http"

MONITORING_GROUP: Final = "monitoring.coreos.com"
MONITORING_VERSION: Final = "v1"
MONITORING_API_VERSION: Final = f"{MONITORING_GROUP}/{MONITORING_VERSION}"

KEDA_GROUP: Final = "keda.sh"
KEDA_VERSION: Final = "v1alpha1"
KEDA_API_VERSION: Final = f"{KEDA_GROUP}/{KEDA_VERSION}"
EXTERNAL_METRICS_GROUP: Final = "external.metrics.k8s.io"
EXTERNAL_METRICS_VERSION: Final = "v1beta1"

CONDITION_READY: Final = "Ready"
CONDITION_PROGRESSING: Final = "Progressing"
CONDITION_DEGRADED: Final = "Degraded"
CONDITION_MONITORING_READY: Final = "MonitoringReady"
CONDITION_AUTOSCALING_READY: Final = "AutoscalingReady"
CONDITION_TYPES: Final = (
    CONDITION_READY,
    CONDITION_PROGRESSING,
    CONDITION_DEGRADED,
    CONDITION_MONITORING_READY,
    CONDITION_AUTOSCALING_READY,
)
