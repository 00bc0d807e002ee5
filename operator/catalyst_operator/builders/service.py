"""The Service in front of the pods: one named port `http` to the container's `http` port."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.meta import child_metadata
from catalyst_operator.constants import COMPONENT_SERVER, PORT_NAME
from catalyst_operator.labels import selector_labels
from catalyst_operator.spec import OcrDeploymentSpec


def service_url(spec: OcrDeploymentSpec) -> str:
    """The in-cluster base URL reported as `.status.url`."""
    return f"http://{spec.name}.{spec.namespace}.svc:{spec.service.port}"


def build_service(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(cr, spec, ctx, spec.name, COMPONENT_SERVER, annotations=spec.service.annotations),
        "spec": {
            "type": spec.service.type,
            "selector": selector_labels(spec.name),
            "ports": [{"name": PORT_NAME, "port": spec.service.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
