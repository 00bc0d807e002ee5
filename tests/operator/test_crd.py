"""The OcrDeployment CRD: a valid, structural, documented schema whose rules mean what spec.py means.

The central property: for any object, the CRD (schema + defaults + CEL) and `parse_spec` agree.
Objects the CRD admits parse to the same value with or without the CRD's defaults applied (so the
operator's built-in defaults are the CRD's), and the invalid specs below are refused by both.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from catalyst_operator import constants
from catalyst_operator.spec import SpecError, parse_spec
from test_crd_tools import CRD_PATH, admit, crd_schema, load_crd

from ocr_service.contract import SECRET_ENV_VARS, EnvVar
from ocr_service.settings import Settings

PRESERVE_UNKNOWN_ALLOWED = {
    ".spec.affinity",
    ".spec.topologySpreadConstraints[]",
    ".spec.env[].valueFrom",
    ".spec.jobWorkers.affinity",
    ".spec.jobWorkers.topologySpreadConstraints[]",
}
"""The only places where a full schema is impractical (big core/v1 types copied onto the pod)."""


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def cr(spec: dict[str, Any] | None = None, name: str = "ocr") -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name, "namespace": "team", "uid": "0b0e7e0e-1111-2222-3333-444455556666"},
        "spec": spec if spec is not None else {},
    }


def test_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(load_crd(), "1.31", strict=True)


def test_crd_identity_matches_the_operator_constants() -> None:
    crd = load_crd()
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == constants.CRD_NAME
    assert crd["spec"]["group"] == constants.GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    assert (names["kind"], names["plural"], names["singular"]) == (constants.KIND, constants.PLURAL, constants.SINGULAR)
    assert constants.SHORT_NAME in names["shortNames"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == constants.VERSION and version["served"] and version["storage"]


def test_schema_is_structural_and_documented() -> None:
    schema = crd_schema()
    missing_type, missing_description, open_nodes = [], [], []
    for path, node in walk(schema):
        int_or_string = node.get("x-kubernetes-int-or-string")
        if "type" not in node and not int_or_string:
            missing_type.append(path)
        is_map_value = path.endswith("{}")
        is_scalar_item = path.endswith("[]") and node.get("type") != "object"
        is_envelope = path in (".apiVersion", ".kind", ".metadata", ".metadata.name")
        if not (is_map_value or is_scalar_item or is_envelope) and path and not node.get("description"):
            missing_description.append(path)
        if node.get("x-kubernetes-preserve-unknown-fields"):
            open_nodes.append(path)
        if "x-kubernetes-validations" in node:
            for rule in node["x-kubernetes-validations"]:
                assert rule.get("message"), f"{path}: every CEL rule explains itself"
    assert missing_type == []
    assert missing_description == []
    assert set(open_nodes) <= PRESERVE_UNKNOWN_ALLOWED


def test_every_default_is_admitted_by_its_own_schema() -> None:
    """The API server refuses a CRD whose defaults fail their schema; check each one here."""
    for path, node in walk(crd_schema()):
        if "default" in node:
            _, errors = admit(copy.deepcopy(node["default"]), node)
            assert errors == [], f"default of {path}: {errors}"


def test_issue_fields_are_all_in_the_spec() -> None:
    spec = crd_schema()["properties"]["spec"]["properties"]
    wanted = {
        "image", "imagePullPolicy", "imagePullSecrets", "replicas", "languages", "ocr", "database", "redis",
        "auth", "resources", "autoscaling", "podDisruptionBudget", "service", "monitoring", "networkPolicy",
        "nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName",
        "podLabels", "podAnnotations", "env", "jobWorkers",
    }  # fmt: skip
    assert set(spec) == wanted
    ocr = spec["ocr"]["properties"]
    assert set(ocr) == {
        "lang",
        "psm",
        "oem",
        "preprocess",
        "timeoutSeconds",
        "maxUploadBytes",
        "maxPixels",
        "maxPages",
        "workers",
    }


def test_ocr_defaults_are_the_service_defaults() -> None:
    ocr = crd_schema()["properties"]["spec"]["properties"]["ocr"]["properties"]
    service = Settings()
    assert ocr["lang"]["default"] == service.default_lang
    assert ocr["psm"]["default"] == service.default_psm
    assert ocr["oem"]["default"] == service.default_oem
    assert ocr["preprocess"]["default"] == service.default_preprocess
    assert ocr["timeoutSeconds"]["default"] == service.timeout_seconds
    assert ocr["maxUploadBytes"]["default"] == service.max_upload_bytes
    assert ocr["maxPixels"]["default"] == service.max_pixels
    assert ocr["maxPages"]["default"] == service.max_pages
    languages = crd_schema()["properties"]["spec"]["properties"]["languages"]["default"]
    assert tuple(languages) == service.languages


def test_subresources_and_printer_columns() -> None:
    (version,) = load_crd()["spec"]["versions"]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Reason"]["priority"] == 1
    assert columns["URL"]["jsonPath"] == ".status.url"
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    status = crd_schema()["properties"]["status"]["properties"]
    # Every path a column or the scale subresource reads is declared, so the API server keeps it.
    assert columns["Replicas"]["jsonPath"] == ".status.replicasDisplay" and "replicasDisplay" in status
    for field in ("observedGeneration", "replicas", "readyReplicas", "selector", "url"):
        assert field in status


def test_status_conditions_follow_the_api_conventions() -> None:
    conditions = crd_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert set(item["properties"]) == {
        "type",
        "status",
        "observedGeneration",
        "lastTransitionTime",
        "reason",
        "message",
    }
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    for condition in constants.CONDITION_TYPES:
        assert condition in conditions["description"]
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "2/2 replicas ready",
                "lastTransitionTime": "2026-11-29T06:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "observedGeneration": 3,
        "replicas": 2,
        "readyReplicas": 2,
        "replicasDisplay": "2/2",
        "selector": "app.kubernetes.io/name=catalyst-ocr",
        "url": "http://ocr.team.svc:80",
    }
    assert admit({**cr(), "status": status})[1] == []
    bad = copy.deepcopy(status)
    bad["conditions"][0]["reason"] = "not a reason"
    assert admit({**cr(), "status": bad})[1] != []


def test_empty_spec_is_admitted_and_defaults_agree_with_parse_spec() -> None:
    raw = cr({})
    defaulted, errors = admit(raw)
    assert errors == []
    assert parse_spec(defaulted) == parse_spec(raw)
    assert defaulted["spec"]["replicas"] == 1
    assert defaulted["spec"]["resources"]["limits"]["cpu"] == "1"


VALID_SPECS = {
    "hpa": {
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 2},
        "database": {"urlSecretRef": {"name": "pg"}},
    },
    "pdb-percent": {"podDisruptionBudget": {"maxUnavailable": "25%"}},
    "pdb-zero": {"podDisruptionBudget": {"minAvailable": 0}},
    "langs": {"languages": ["eng", "deu"], "ocr": {"lang": "deu+eng"}},
    "monitor": {"monitoring": {"serviceMonitor": {"enabled": True, "interval": "1m", "scrapeTimeout": "1m"}}},
    "policy": {
        "networkPolicy": {"enabled": True, "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}
    },
    "toleration": {"tolerations": [{"operator": "Exists"}]},
    "env-secret": {"env": [{"name": "OCR_CALLBACK_SECRET", "valueFrom": {"secretKeyRef": {"name": "cb", "key": "k"}}}]},
    "zero-replicas": {"replicas": 0},
    "workers": {"ocr": {"workers": 4}, "resources": {"limits": {"cpu": 2}}},
}


@pytest.mark.parametrize("spec", VALID_SPECS.values(), ids=VALID_SPECS.keys())
def test_valid_specs_are_admitted_and_parse_identically_with_defaults(spec: dict[str, Any]) -> None:
    raw = cr(spec)
    defaulted, errors = admit(raw)
    assert errors == []
    assert parse_spec(defaulted) == parse_spec(raw)


INVALID_SPECS = {
    # name: (spec, text of the CRD's error, field SpecError names)
    "min-above-max": (
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "minReplicas must not exceed maxReplicas",
        "spec.autoscaling.minReplicas",
    ),
    "min-above-default-max": (
        {"autoscaling": {"minReplicas": 4}},
        "minReplicas must not exceed maxReplicas",
        "spec.autoscaling.minReplicas",
    ),
    "pdb-both": (
        {"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
        "exactly one of minAvailable and maxUnavailable",
        "spec.podDisruptionBudget",
    ),
    "pdb-neither": ({"podDisruptionBudget": {}}, "exactly one", "spec.podDisruptionBudget"),
    "pdb-bad-percent": (
        {"podDisruptionBudget": {"minAvailable": "150%"}},
        "does not match",
        "spec.podDisruptionBudget.minAvailable",
    ),
    "pdb-negative": (
        {"podDisruptionBudget": {"maxUnavailable": -1}},
        "less than the minimum",
        "spec.podDisruptionBudget.maxUnavailable",
    ),
    "hpa-without-cpu": (
        {"autoscaling": {"enabled": True}, "resources": {"requests": {"memory": "1Gi"}}},
        "autoscaling needs resources.requests.cpu",
        "spec.autoscaling.enabled",
    ),
    "lang-not-installed": ({"ocr": {"lang": "eng+fra"}}, "ocr.lang must be listed in languages", "spec.ocr.lang"),
    "psm-out-of-range": ({"ocr": {"psm": 14}}, "ocr.psm", "spec.ocr.psm"),
    "psm-recognises-nothing": ({"ocr": {"psm": 2}}, "psm 2 is not implemented", "spec.ocr.psm"),
    "psm-orientation-only": ({"ocr": {"psm": 0}}, "ocr.psm", "spec.ocr.psm"),
    "bad-preprocess": ({"ocr": {"preprocess": "always"}}, "ocr.preprocess", "spec.ocr.preprocess"),
    "scrape-timeout-above-interval": (
        {"monitoring": {"serviceMonitor": {"enabled": True, "interval": "10s", "scrapeTimeout": "1m"}}},
        "scrapeTimeout must not exceed interval",
        "spec.monitoring.serviceMonitor.scrapeTimeout",
    ),
    "bad-duration": (
        {"monitoring": {"serviceMonitor": {"interval": "1d"}}},
        "interval",
        "spec.monitoring.serviceMonitor.interval",
    ),
    "selector-pod-label": (
        {"podLabels": {"app.kubernetes.io/instance": "other"}},
        "podLabels must not set the selector labels",
        "spec.podLabels",
    ),
    "plain-secret-env": (
        {"env": [{"name": "OCR_DATABASE_URL", "value": "postgresql://u:p@h/db"}]},
        "carries a credential",
        "spec.env[0].value",
    ),
    "env-value-and-from": (
        {"env": [{"name": "X", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
        "value or valueFrom, not both",
        "spec.env[0]",
    ),
    "peer-empty": ({"networkPolicy": {"enabled": True, "from": [{}]}}, "set podSelector", "spec.networkPolicy.from[0]"),
    "peer-ipblock-mixed": (
        {"networkPolicy": {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}},
        "ipBlock cannot be combined",
        "spec.networkPolicy.from[0]",
    ),
    "exists-with-value": (
        {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
        "value must be empty",
        "spec.tolerations[0].value",
    ),
    "bad-cidr": (
        {"networkPolicy": {"from": [{"ipBlock": {"cidr": "10.0.0.0"}}]}},
        "does not match",
        "spec.networkPolicy.from[0].ipBlock.cidr",
    ),
    "pdb-leading-zero": (
        {"podDisruptionBudget": {"minAvailable": "050%"}},
        "does not match",
        "spec.podDisruptionBudget",
    ),
    "spread-without-key": (
        {"topologySpreadConstraints": [{"maxSkew": 1}]},
        "topologyKey",
        "spec.topologySpreadConstraints[0]",
    ),
    "missing-secret-name": ({"database": {"urlSecretRef": {"key": "url"}}}, "name", "spec.database.urlSecretRef.name"),
    "bad-service-type": ({"service": {"type": "ExternalName"}}, "service.type", "spec.service.type"),
    "replicas-negative": ({"replicas": -1}, "replicas", "spec.replicas"),
    "duplicate-language": ({"languages": ["eng", "eng"]}, "languages", "spec.languages"),
}


@pytest.mark.parametrize(("spec", "crd_error", "field"), INVALID_SPECS.values(), ids=INVALID_SPECS.keys())
def test_invalid_specs_are_refused_by_the_crd_and_by_parse_spec(
    spec: dict[str, Any], crd_error: str, field: str
) -> None:
    raw = cr(spec)
    _, errors = admit(raw)
    assert any(crd_error in error for error in errors), errors
    with pytest.raises(SpecError) as raised:
        parse_spec(raw)
    assert raised.value.field.startswith(field), raised.value


def test_metadata_restricts_only_the_name() -> None:
    """The API server allows nothing in `metadata` but restrictions on name and generateName."""
    metadata = crd_schema()["properties"]["metadata"]
    assert set(metadata["properties"]) == {"name"}
    assert set(metadata["properties"]["name"]) == {"type", "maxLength", "pattern"}


def test_name_must_fit_a_service_name() -> None:
    for name in ("Ocr", "1ocr", "o" * 64, "ocr.v2"):
        _, errors = admit(cr({}, name=name))
        assert any(error.startswith("metadata.name:") for error in errors), (name, errors)
        with pytest.raises(SpecError, match=r"metadata\.name"):
            parse_spec(cr({}, name=name))
    assert admit(cr({}, name="o" * 63))[1] == []


def test_env_var_names_in_the_crd_are_the_service_contract() -> None:
    """The YAML cannot import ocr_service.contract, so check every name it spells against it."""
    text = CRD_PATH.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\bOCR_[A-Z_]+[A-Z]\b", text))
    assert mentioned, "the descriptions name the settings they map to"
    assert mentioned <= {str(var) for var in EnvVar}
    env_rules = crd_schema()["properties"]["spec"]["properties"]["env"]["items"]["x-kubernetes-validations"]
    (credential_rule,) = (rule["rule"] for rule in env_rules if "credential" in rule["message"])
    listed = set(re.findall(r"'(OCR_[A-Z_]+)'", credential_rule))
    assert listed == {str(var) for var in SECRET_ENV_VARS}
