"""The NetworkPolicy that admits traffic to the OCR pods' http port only from chosen sources.

It covers the instance's API pods and its job worker pods (`spec.jobWorkers`), whose http port
serves only the probes and `/metrics`: Prometheus, when in another namespace, is one of the
chosen sources for both.

Sources: every pod of the CR's namespace when `allowSameNamespace` (the default), plus each
NetworkPolicyPeer in `spec.networkPolicy.from` (e.g. the ingress controller's or Prometheus'
namespace). Egress is left alone: the pods must reach PostgreSQL, Redis and callback targets.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.meta import child_metadata
from catalyst_operator.constants import COMPONENT_JOB_WORKER, COMPONENT_SERVER, LABEL_COMPONENT, PORT_NAME
from catalyst_operator.labels import selector_labels
from catalyst_operator.spec import OcrDeploymentSpec


def instance_pods_selector(instance: str) -> dict[str, Any]:
    """Every pod of one instance with an http port: its API pods and its job worker pods."""
    labels = selector_labels(instance)
    component = labels.pop(LABEL_COMPONENT)
    return {
        "matchLabels": labels,
        "matchExpressions": [{"key": LABEL_COMPONENT, "operator": "In", "values": [component, COMPONENT_JOB_WORKER]}],
    }


def build_network_policy(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    peers: list[dict[str, Any]] = []
    if spec.network_policy.allow_same_namespace:
        peers.append({"podSelector": {}})
    peers.extend(copy.deepcopy(dict(peer)) for peer in spec.network_policy.sources)
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": PORT_NAME}]}
    if peers:
        rule["from"] = peers
    # No peers at all would mean "from anywhere" in a rule with `ports` only, so deny all instead.
    ingress = [rule] if peers else []
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(cr, spec, ctx, spec.name, COMPONENT_SERVER),
        "spec": {
            "podSelector": instance_pods_selector(spec.name),
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
