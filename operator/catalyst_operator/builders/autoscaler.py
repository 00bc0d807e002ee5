"""The HorizontalPodAutoscaler (autoscaling/v2) that scales the Deployment on CPU utilisation.

Built only when `spec.autoscaling.enabled`; the Deployment then leaves `replicas` unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.meta import child_metadata
from catalyst_operator.constants import COMPONENT_SERVER
from catalyst_operator.spec import OcrDeploymentSpec


def build_autoscaler(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    scaling = spec.autoscaling
    target = {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization_percentage}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(cr, spec, ctx, spec.name, COMPONENT_SERVER),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": target,
                    },
                }
            ],
        },
    }
