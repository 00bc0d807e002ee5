"""What the builders need to know beyond the spec: facts about the operator and the cluster."""

from __future__ import annotations

from dataclasses import dataclass

from catalyst_operator.constants import OPERATOR_NAME


@dataclass(frozen=True)
class BuildContext:
    """Inputs the runtime gathers before building.

    `default_image`: the image used when the CR names none (operator settings).
    `monitoring_available`: whether the cluster serves monitoring.coreos.com/v1 (discovery).
    `keda_available`: whether the cluster serves keda.sh/v1alpha1 ScaledObjects and TriggerAuthentications.
    `backlog_metric_available`: whether the metrics API serves the `ocr_job_backlog_pages` External metric
    (only asked when KEDA is missing and the job workers autoscale).
    `secret_hash`: sha256 of the referenced Secrets' data, so rotating one rolls the pods.
    `operator_name`: the `app.kubernetes.io/managed-by` value.
    """

    default_image: str
    monitoring_available: bool
    secret_hash: str
    operator_name: str = OPERATOR_NAME
    keda_available: bool = False
    backlog_metric_available: bool = False
