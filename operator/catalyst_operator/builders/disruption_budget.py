"""The PodDisruptionBudget (policy/v1) that keeps OCR capacity through node drains."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.meta import child_metadata
from catalyst_operator.constants import COMPONENT_SERVER
from catalyst_operator.labels import selector_labels
from catalyst_operator.spec import OcrDeploymentSpec


def build_disruption_budget(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    budget = spec.pod_disruption_budget
    if budget is None:
        raise ValueError("build_disruption_budget needs spec.podDisruptionBudget")
    pdb_spec: dict[str, Any] = {"selector": {"matchLabels": selector_labels(spec.name)}}
    if budget.min_available is not None:
        pdb_spec["minAvailable"] = budget.min_available
    else:
        pdb_spec["maxUnavailable"] = budget.max_unavailable
    # Let pods that never became ready be evicted even when the budget is exhausted (k8s >= 1.27).
    pdb_spec["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(cr, spec, ctx, spec.name, COMPONENT_SERVER),
        "spec": pdb_spec,
    }
