"""What the API server does with an OcrDeployment, done here without a cluster.

`admit(obj)` applies the CRD's defaults, checks the object against its openAPIV3Schema (unknown
fields rejected, like `kubectl apply` with strict field validation) and evaluates every CEL
`x-kubernetes-validations` rule on the fields present, with cel-python. Kubernetes' extension
function that the CRD uses (`split`, from the strings library) is supplied here. The other CRD tests import
these helpers; the tests below check the helpers themselves on small schemas.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "manifests" / "crds" / "ocr.catalyst.dev_ocrdeployments.yaml"
SAMPLES_DIR = REPO_ROOT / "manifests" / "samples"


def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))


def crd_schema(crd: dict[str, Any] | None = None) -> dict[str, Any]:
    crd = crd or load_crd()
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def to_json_schema(node: dict[str, Any], *, root: bool = False, open_object: bool = False) -> dict[str, Any]:
    """OpenAPI v3 (structural) -> JSON Schema: objects without preserve-unknown reject unknown fields.

    The root's `metadata` is ObjectMeta: the schema may only restrict its name, everything else passes.
    """
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "default", "format", "nullable"):
            continue
        if key == "properties":
            result[key] = {
                name: to_json_schema(child, open_object=root and name == "metadata") for name, child in value.items()
            }
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            result[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            result[key] = [to_json_schema(child) for child in value]
        else:
            result[key] = value
    if node.get("x-kubernetes-list-type") == "set":
        result["uniqueItems"] = True
    if node.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
    if node.get("nullable"):
        result = {"anyOf": [result, {"type": "null"}]}
    is_open = open_object or node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if node.get("type") == "object" and "properties" in node and not is_open:
        result["additionalProperties"] = False
    return result


def apply_defaults(node: dict[str, Any], value: Any) -> Any:
    """Fill in `default`s the way the API server does: absent fields get theirs, then recurse."""
    if isinstance(value, dict):
        for name, child in node.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for name in list(value):
                if name not in node.get("properties", {}):
                    value[name] = apply_defaults(extra, value[name])
    elif isinstance(value, list) and "items" in node:
        value = [apply_defaults(node["items"], item) for item in value]
    return value


def _split(text: celtypes.StringType, separator: celtypes.StringType) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(part) for part in str(text).split(str(separator))])


KUBERNETES_CEL_FUNCTIONS = {"split": _split}
_CEL = celpy.Environment()


def cel_rules(node: dict[str, Any], value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Every (path, rule, self) to evaluate: rules of each schema node whose field is present."""
    for rule in node.get("x-kubernetes-validations", []):
        yield path, rule, value
    if isinstance(value, dict):
        for name, child in node.get("properties", {}).items():
            if name in value:
                yield from cel_rules(child, value[name], f"{path}.{name}")
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            yield from cel_rules(node["items"], item, f"{path}[{index}]")


def evaluate_rule(rule: str, self_value: Any) -> bool:
    program = _CEL.program(_CEL.compile(rule), functions=KUBERNETES_CEL_FUNCTIONS)
    result = program.evaluate({"self": celpy.json_to_cel(self_value)})
    if isinstance(result, Exception):
        raise result
    return bool(result)


def admit(obj: dict[str, Any], schema: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Default and validate one object; return it with defaults and the list of errors (empty = admitted)."""
    schema = schema or crd_schema()
    defaulted = apply_defaults(schema, copy.deepcopy(obj))
    validator = jsonschema.Draft202012Validator(to_json_schema(schema, root=True))
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(defaulted)
    ]
    if not errors:  # like the API server, CEL runs only on objects that pass the schema
        for path, rule, value in cel_rules(schema, defaulted):
            if not evaluate_rule(rule["rule"], value):
                errors.append(f"{path}{rule.get('fieldPath', '')}: {rule['message']}")
    return defaulted, errors


# --- tests of the helpers themselves -------------------------------------------------------------

_TOY = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "default": {},
            "x-kubernetes-validations": [{"rule": "self.low <= self.high", "message": "low above high"}],
            "properties": {
                "low": {"type": "integer", "default": 1},
                "high": {"type": "integer", "default": 3},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    },
}


def test_defaults_fill_absent_fields_recursively() -> None:
    defaulted, errors = admit({}, _TOY)
    assert defaulted == {"spec": {"low": 1, "high": 3}}
    assert errors == []


def test_unknown_fields_are_rejected_except_where_preserved() -> None:
    _, errors = admit({"spec": {"lowest": 1, "free": {"anything": [1]}}}, _TOY)
    assert len(errors) == 1 and "lowest" in errors[0]


def test_cel_rules_are_evaluated_with_defaults_applied() -> None:
    assert admit({"spec": {"low": 5}}, _TOY)[1] == [".spec: low above high"]
    assert admit({"spec": {"low": 3}}, _TOY)[1] == []


def test_kubernetes_cel_extensions_behave_like_the_api_server() -> None:
    assert evaluate_rule("self.split('+') == ['eng', 'deu']", "eng+deu")
    assert evaluate_rule("self.split('+').all(l, l in ['eng', 'deu'])", "deu")
