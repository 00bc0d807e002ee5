"""docs/ocrdeployment.md is generated from the CRD, and this test keeps it in sync.

After editing the CRD, regenerate the reference with:

    .venv/bin/python tests/operator/test_crd_docs.py

Every field's type, default, bounds, enum, pattern and CEL rules come from the schema, and its
meaning from the schema's `description` (what `kubectl explain` shows), so the two cannot drift.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from catalyst_operator.builders import CHILD_TYPES
from test_crd_tools import REPO_ROOT, SAMPLES_DIR, crd_schema, load_crd

DOC_PATH = REPO_ROOT / "docs" / "ocrdeployment.md"

CHILD_WHEN = {
    "ConfigMap": "always (the `OCR_*` settings; never credentials)",
    "Service": "always",
    "Deployment": "always (the API pods)",
    "Deployment-workers": "`spec.jobWorkers` is set (the job worker pods, `python -m ocr_service.jobs`)",
    "HorizontalPodAutoscaler": "`spec.autoscaling.enabled`",
    "HorizontalPodAutoscaler-workers": "`spec.jobWorkers.autoscaling.enabled` and the cluster does not serve "
    "keda.sh/v1alpha1 (on the `ocr_job_backlog_pages` External metric if the metrics API serves it, else on CPU; "
    "at least 1 pod)",
    "PodDisruptionBudget": "`spec.podDisruptionBudget` is set",
    "NetworkPolicy": "`spec.networkPolicy.enabled`",
    "ServiceMonitor": "`spec.monitoring.serviceMonitor.enabled` and the cluster serves monitoring.coreos.com/v1",
    "PodMonitor-workers": "as the ServiceMonitor, when `spec.jobWorkers` is set (the job worker pods are behind "
    "no Service)",
    "PrometheusRule": "`spec.monitoring.prometheusRule.enabled` and the cluster serves monitoring.coreos.com/v1",
    "TriggerAuthentication-workers": "the ScaledObject uses the `postgresql` trigger (KEDA reads the URL from "
    "`spec.database`'s Secret)",
    "ScaledObject-workers": "`spec.jobWorkers.autoscaling.enabled` and the cluster serves keda.sh/v1alpha1 "
    "(KEDA then owns the HPA; ours is not created)",
}

CONDITIONS = {
    "Ready": "The service answers: at least the desired number of pods pass `/readyz`. "
    "`kubectl wait --for=condition=Ready ocrd/NAME` waits for it.",
    "Progressing": "A rollout is under way (a spec, config or Secret change rolls the pods).",
    "Degraded": "Something keeps the deployment from its desired state; the reason says what "
    "(for example `SecretNotFound` naming the Secret and key, `InvalidSpec` naming the field, "
    "`ProgressDeadlineExceeded`).",
    "MonitoringReady": "The ServiceMonitor, PodMonitor and PrometheusRule asked for exist; `False` with reason "
    "`ServiceMonitorCRDMissing` when the cluster does not serve monitoring.coreos.com/v1.",
    "AutoscalingReady": "What scales the job workers: `ScaledObjectReady` (KEDA reports the ScaledObject "
    "ready), `ScaledObjectPending` (`Unknown`, KEDA has not reported yet), `ScaledObjectNotReady`, "
    "`ExternalMetricHPA` (no KEDA; an HPA on the backlog metric, at least 1 pod), `False`/`KEDANotInstalled` "
    "(no KEDA and no backlog metric: an HPA on CPU, at least 1 pod), `NotRequested`. Follows KEDA's CRDs "
    "being installed or removed while the operator runs.",
}


def _type_of(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "integer or string"
    kind = str(node.get("type", "any"))
    if kind == "array":
        return f"array of {_type_of(node['items'])}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict) and "properties" not in node:
        return f"map of {_type_of(node['additionalProperties'])}"
    if "format" in node:
        return f"{kind} ({node['format']})"
    return kind


def _constraints(node: dict[str, Any]) -> list[str]:
    found = []
    if "enum" in node:
        found.append("one of " + ", ".join(f"`{value}`" if value != "" else '`""`' for value in node["enum"]))
    for low, high, unit in (
        ("minimum", "maximum", ""),
        ("minLength", "maxLength", " chars"),
        ("minItems", "maxItems", " items"),
    ):
        if low in node and high in node:
            found.append(f"{node[low]}..{node[high]}{unit}")
        elif low in node:
            found.append(f"≥ {node[low]}{unit}")
        elif high in node:
            found.append(f"≤ {node[high]}{unit}")
    if "pattern" in node:
        found.append(f"pattern `{node['pattern']}`")
    items = node.get("items", {})
    if items.get("type") not in (None, "object"):
        found.extend(f"each item: {text}" for text in _constraints(items))
    if node.get("x-kubernetes-list-type") == "set":
        found.append("no duplicates")
    if node.get("x-kubernetes-list-type") == "map":
        found.append("unique by " + ", ".join(node["x-kubernetes-list-map-keys"]))
    if node.get("required"):
        found.append("requires " + ", ".join(f"`{name}`" for name in node["required"]))
    if node.get("x-kubernetes-preserve-unknown-fields"):
        found.append("copied as given")
    found.extend(f"rule: {rule['message']}" for rule in node.get("x-kubernetes-validations", []))
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(node: dict[str, Any], path: str) -> Iterator[str]:
    for name, child in node.get("properties", {}).items():
        child_path = f"{path}.{name}"
        default = f"`{json.dumps(child['default'])}`" if "default" in child else ""
        yield (
            f"| `{child_path}` | {_type_of(child)} | {_cell(default)} | {_cell('; '.join(_constraints(child)))} "
            f"| {_cell(child.get('description', ''))} |"
        )
        target = child["items"] if child.get("type") == "array" else child
        yield from _rows(target, child_path + ("[]" if child.get("type") == "array" else ""))


def render_field_reference() -> str:
    crd = load_crd()
    schema = crd_schema(crd)
    names = crd["spec"]["names"]
    (version,) = crd["spec"]["versions"]
    header = "| field | type | default | constraints | meaning |\n|---|---|---|---|---|"
    columns = "\n".join(
        f"| {column['name']} | `{column['jsonPath']}` | {'wide only' if column.get('priority') else 'always'} |"
        for column in version["additionalPrinterColumns"]
    )
    conditions = "\n".join(f"| `{name}` | {text} |" for name, text in CONDITIONS.items())
    basic = (SAMPLES_DIR / "basic.yaml").read_text(encoding="utf-8").strip()
    parts = [
        "# OcrDeployment field reference",
        "",
        "<!-- Generated from manifests/crds/ocr.catalyst.dev_ocrdeployments.yaml by "
        "`.venv/bin/python tests/operator/test_crd_docs.py`; do not edit by hand. -->",
        "",
        f"`{names['kind']}` (`{crd['spec']['group']}/{version['name']}`, short name "
        f"`{names['shortNames'][0]}`, namespaced).",
        "",
        _cell(schema["description"]),
        "",
        "The smallest one (`manifests/samples/basic.yaml`; `manifests/samples/full.yaml` uses every feature):",
        "",
        "```yaml",
        basic,
        "```",
        "",
        "Constraints starting with *rule:* are CEL validations: the API server refuses an object that breaks "
        "one, with the message shown. The operator re-checks them (and a few no schema can express, such as "
        "label values) and reports a violation as `Degraded`/`InvalidSpec` naming the field — all but the "
        "rule that more than one pod needs `spec.database`, which only the API server enforces (on create, "
        "update and `kubectl scale`), so a resource stored before that rule keeps running until it is changed.",
        "",
        "## Children",
        "",
        "All in the resource's namespace, labelled "
        "`app.kubernetes.io/{name,instance,component,part-of,managed-by,version}` "
        "and owned by it (deleting the OcrDeployment deletes them):",
        "",
        "| kind | name | when |\n|---|---|---|",
        *(
            f"| {child.kind} ({child.api_version}) | `{child.name('NAME')}` | "
            f"{CHILD_WHEN[child.kind + child.name_suffix]} |"
            for child in CHILD_TYPES
        ),
        "",
        "## Name",
        "",
        "`metadata.name` also names the Service, so it must be a DNS-1035 label: "
        + "; ".join(_constraints(schema["properties"]["metadata"]["properties"]["name"]))
        + ".",
        *(f"- {rule['message']}" for rule in schema.get("x-kubernetes-validations", [])),
        "",
        "## spec",
        "",
        "Rules on the whole spec:",
        "",
        *(f"- {_cell(rule['message'])}" for rule in schema["properties"]["spec"].get("x-kubernetes-validations", [])),
        "",
        "Several pods share jobs only through PostgreSQL: without `spec.database` each pod keeps its own SQLite "
        "job store, and a job submitted through the Service is not found when a later request lands on another "
        "pod. So `replicas` above 1, or autoscaling that may go above 1, is refused until `spec.database` is set.",
        "",
        "`spec.jobWorkers` adds a Deployment `NAME-workers` that only recognises job pages; the API pods then "
        "get `OCR_JOB_WORKERS_ENABLED=false`. Its `autoscaling` scales on the backlog (pages queued plus in "
        "progress): with KEDA through a ScaledObject (down to `minReplicas`, 0 allowed; the `postgresql` "
        "trigger by default, `prometheus` optionally), without KEDA through an HPA that keeps at least one pod. "
        "`AutoscalingReady` and `status.jobWorkers.scaler` say which; see docs/deploy.md for both triggers.",
        "",
        header,
        *_rows(schema["properties"]["spec"], "spec"),
        "",
        "## status",
        "",
        "Written by the operator only (status subresource). The scale subresource reads "
        f"`{version['subresources']['scale']['statusReplicasPath']}` and "
        f"`{version['subresources']['scale']['labelSelectorPath']}`, so `kubectl scale ocrd/NAME --replicas=N` works.",
        "",
        header,
        *_rows(schema["properties"]["status"], "status"),
        "",
        "## Conditions",
        "",
        "Each condition has `type`, `status` (`True`/`False`/`Unknown`), a CamelCase `reason`, a `message`, "
        "`lastTransitionTime` and the `observedGeneration` it was computed for.",
        "",
        "| type | meaning |\n|---|---|",
        conditions,
        "",
        "## kubectl get columns",
        "",
        "| column | source | shown |\n|---|---|---|",
        columns,
        "",
    ]
    return "\n".join(parts)


def test_field_reference_is_in_sync_with_the_crd() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render_field_reference(), (
        "docs/ocrdeployment.md is stale: run .venv/bin/python tests/operator/test_crd_docs.py"
    )


def test_field_reference_lists_every_spec_field() -> None:
    text = DOC_PATH.read_text(encoding="utf-8")
    for path in (
        "spec.autoscaling.minReplicas",
        "spec.jobWorkers.autoscaling.minReplicas",
        "spec.jobWorkers.autoscaling.pagesPerReplica",
        "status.jobWorkers.backlog",
        "spec.ocr.workers",
        "spec.networkPolicy.from[].ipBlock.cidr",
        "status.url",
    ):
        assert f"| `{path}` |" in text
    for condition in CONDITIONS:
        assert f"| `{condition}` |" in text


if __name__ == "__main__":
    DOC_PATH.write_text(render_field_reference(), encoding="utf-8")
    print(f"wrote {DOC_PATH.relative_to(REPO_ROOT)}")
