"""What the builders need to know beyond the spec: facts about the operator and the cluster."""

from __future__ import annotations

from dataclasses import dataclass

from catalyst_operator.constants import OPERATOR_NAME


@dataclass(frozen=True)
class BuildContext:
    """Inputs the runtime gathers before building.

    `default_image`: the image used when the CR names none (operator settings).
    `monitoring_available`: whether the cluster serves monitoring.coreos.com/v1 (discovery).
    `secret_hash`: sha256 of the referenced Secrets' data, so rotating one rolls the pods.
    `operator_name`: the `app.kubernetes.io/managed-by` value.
    """

    default_image: str
    monitoring_available: bool
    secret_hash: str
    operator_name: str = OPERATOR_NAME
