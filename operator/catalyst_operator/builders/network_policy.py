"""The NetworkPolicy that admits traffic to the OCR pods' http port only from chosen sources.

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
from catalyst_operator.constants import COMPONENT_SERVER, PORT_NAME
from catalyst_operator.labels import selector_labels
from catalyst_operator.spec import OcrDeploymentSpec


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
            "podSelector": {"matchLabels": selector_labels(spec.name)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
