"""What a real API server checks when a CRD we ship is created, and when its objects are: offline.

KMock accepts any CRD, so a CRD that a real API server rejects passed every other test (issue 9:
`{}` defaults failing `self.minReplicas <= self.maxReplicas` with "no such key"). For every CRD in
`manifests/crds/` and the chart's `crds/`, this module checks what apiextensions-apiserver does:

- every `x-kubernetes-validations` rule compiles, and holds on the `default` of its own schema
  node *as written* (the server validates each default against its node's schema and CEL rules
  without applying nested defaults), and on that default with nested defaults applied (what a
  stored object holds);
- it holds on every sample (`manifests/samples/`, the chart's `sample.spec`) and on a minimal
  object after defaulting;
- structural-schema rules: every node typed, `x-kubernetes-preserve-unknown-fields` only where
  meant, transition rules (`oldSelf`) only where the server allows them, and a CEL cost that can
  be bounded (rules that iterate lists or strings need `maxItems`/`maxLength` there and on the
  lists around them).

Schema validation is jsonschema (through `test_crd_tools.to_json_schema`); CEL is cel-python.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from catalyst_operator import constants
from test_crd_tools import REPO_ROOT, SAMPLES_DIR, admit, apply_defaults, cel_rules, evaluate_rule, to_json_schema

CHART_DIR = REPO_ROOT / "charts" / "catalyst-ocr-operator"
SHIPPED_CRDS = sorted([*(REPO_ROOT / "manifests" / "crds").glob("*.yaml"), *(CHART_DIR / "crds").glob("*.yaml")])

PRESERVE_UNKNOWN_ALLOWED = {
    ".spec.affinity",
    ".spec.topologySpreadConstraints[]",
    ".spec.env[].valueFrom",
    ".spec.jobWorkers.affinity",
    ".spec.jobWorkers.topologySpreadConstraints[]",
}
"""The only nodes meant to keep unknown fields (big core/v1 types copied onto the pod unchanged)."""

PER_RULE_COST_LIMIT = 1_000_000
"""The API server's per-expression estimated cost limit (apiextensions `PerCallLimit`)."""

ITERATING = re.compile(r"\.(all|exists|exists_one|map|filter)\(|\.split\(|\bin\s+self\b")
SELF_PATH = re.compile(r"\bself((?:\.[A-Za-z_][A-Za-z0-9_]*\b(?!\())*)")


def crd_id(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def versions(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    for version in crd["spec"]["versions"]:
        yield version["name"], version["schema"]["openAPIV3Schema"]


def schemas() -> list[Any]:
    return [
        pytest.param(schema, id=f"{crd_id(path)}:{name}") for path in SHIPPED_CRDS for name, schema in versions(path)
    ]


def nodes(node: dict[str, Any], path: str = "", lists: tuple[dict[str, Any], ...] = ()) -> Iterator[Any]:
    """(path, node, enclosing array nodes) for every schema node, the way the server names them."""
    yield path, node, lists
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}", lists)
    if "items" in node:
        yield from nodes(node["items"], f"{path}[]", (*lists, node))
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}", (*lists, node))


def server_path(path: str) -> str:
    """`.spec.autoscaling` -> `properties[spec].properties[autoscaling]`, as the API server reports it."""
    parts = re.findall(r"\.([^.\[{]+)|(\[\])|\{\}", path)
    return ".".join(
        f"properties[{name}]" if name else "items" if items else "additionalProperties" for name, items in parts
    )


def value_errors(node: dict[str, Any], value: Any, where: str) -> list[str]:
    """Validate `value` against `node` as the server validates a default: schema, then CEL rules."""
    validator = jsonschema.Draft202012Validator(to_json_schema(node))
    errors = [f"{where}: {error.message}" for error in validator.iter_errors(value)]
    if errors:
        return errors
    for path, rule, self_value in cel_rules(node, value):
        try:
            holds = evaluate_rule(rule["rule"], self_value)
        except celpy.CELEvalError as error:
            errors.append(f"{where}{path}: {error.args[0]} evaluating rule: {rule.get('message', rule['rule'])}")
            continue
        if not holds:
            errors.append(f"{where}{path}: {rule.get('message', rule['rule'])}")
    return errors


def default_errors(schema: dict[str, Any], *, with_nested_defaults: bool) -> list[str]:
    errors = []
    for path, node, _ in nodes(schema):
        if "default" in node:
            default = copy.deepcopy(node["default"])
            if with_nested_defaults:
                default = apply_defaults(node, default)
            errors += value_errors(node, default, f"{server_path(path)}.default")
    return errors


@pytest.mark.parametrize("schema", schemas())
def test_every_rule_compiles_and_explains_itself(schema: dict[str, Any]) -> None:
    environment = celpy.Environment()
    for path, node, _ in nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            environment.compile(rule["rule"])  # raises on a syntax error
            assert rule.get("message"), f"{path}: a rule without a message shows users its CEL source"


@pytest.mark.parametrize("schema", schemas())
def test_every_default_as_written_passes_its_schema_and_rules(schema: dict[str, Any]) -> None:
    """What `kubectl apply` of the CRD itself runs into: the server rejects the CRD otherwise."""
    assert default_errors(schema, with_nested_defaults=False) == []


@pytest.mark.parametrize("schema", schemas())
def test_every_default_with_nested_defaults_passes_its_schema_and_rules(schema: dict[str, Any]) -> None:
    assert default_errors(schema, with_nested_defaults=True) == []


def test_the_check_reports_what_the_api_server_reported_for_the_old_crd() -> None:
    """The two errors issue 9 quotes, from the CRD as it was, come out of `default_errors`."""
    old = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "default": {},
                "properties": {
                    "autoscaling": {
                        "type": "object",
                        "default": {},
                        "x-kubernetes-validations": [
                            {
                                "rule": "self.minReplicas <= self.maxReplicas",
                                "message": "minReplicas must not exceed maxReplicas.",
                            }
                        ],
                        "properties": {
                            "minReplicas": {"type": "integer", "default": 1},
                            "maxReplicas": {"type": "integer", "default": 3},
                        },
                    },
                    "monitoring": {
                        "type": "object",
                        "default": {},
                        "properties": {
                            "serviceMonitor": {
                                "type": "object",
                                "default": {},
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "duration(self.scrapeTimeout) <= duration(self.interval)",
                                        "message": "scrapeTimeout must not exceed interval.",
                                    }
                                ],
                                "properties": {
                                    "interval": {"type": "string", "default": "30s"},
                                    "scrapeTimeout": {"type": "string", "default": "10s"},
                                },
                            }
                        },
                    },
                },
            }
        },
    }  # fmt: skip
    errors = default_errors(old, with_nested_defaults=False)
    assert any(
        error.startswith("properties[spec].properties[autoscaling].default")
        and "minReplicas" in error
        and "minReplicas must not exceed maxReplicas" in error
        for error in errors
    ), errors
    assert any(
        error.startswith("properties[spec].properties[monitoring].properties[serviceMonitor].default")
        and "scrapeTimeout" in error
        and "scrapeTimeout must not exceed interval" in error
        for error in errors
    ), errors
    assert len(errors) == 2, errors
    # With nested defaults applied both rules hold: that is why the older test missed it.
    assert default_errors(old, with_nested_defaults=True) == []


def merge(base: Any, extra: Any) -> Any:
    """Helm's merge of values files: maps merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(extra, dict):
        return {**base, **{key: merge(base.get(key), value) for key, value in extra.items()}}
    return copy.deepcopy(extra)


def skaffold_sample_specs(chart_values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sample's spec each skaffold profile deploys (the release's values files, then the profile's)."""
    skaffold = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text(encoding="utf-8"))
    (release,) = skaffold["deploy"]["helm"]["releases"]
    profiles: dict[str, list[str]] = {"default": []}
    for profile in skaffold.get("profiles", []):
        profiles[profile["name"]] = [
            patch["value"] for patch in profile.get("patches", []) if patch["path"].endswith("/valuesFiles/-")
        ]
    specs = {}
    for name, extra_files in profiles.items():
        values = chart_values
        for file in [*release["valuesFiles"], *extra_files]:
            values = merge(values, yaml.safe_load((REPO_ROOT / file).read_text(encoding="utf-8")))
        specs[name] = values["sample"]["spec"]
    return specs


def samples() -> list[Any]:
    found = []
    for path in sorted(SAMPLES_DIR.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if doc and doc.get("kind") == constants.KIND:
                found.append(pytest.param(doc, id=f"{path.name}#{index}"))
    chart_values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    chart_sample = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": chart_values["sample"]["name"]},
        "spec": chart_values["sample"]["spec"],
    }  # what templates/sample-ocrdeployment.yaml renders
    found.append(pytest.param(chart_sample, id="chart-sample"))
    for profile, spec in skaffold_sample_specs(chart_values).items():
        found.append(pytest.param({**chart_sample, "spec": spec}, id=f"skaffold-{profile}"))
    minimal = {"apiVersion": constants.API_VERSION, "kind": constants.KIND, "metadata": {"name": "ocr"}}
    found.append(pytest.param(minimal, id="minimal"))
    return found


@pytest.mark.parametrize("path", SHIPPED_CRDS, ids=crd_id)
@pytest.mark.parametrize("obj", samples())
def test_samples_and_a_minimal_object_are_admitted(path: Path, obj: dict[str, Any]) -> None:
    for _, schema in versions(path):
        defaulted, errors = admit(obj, schema)
        assert errors == []
        assert "spec" in defaulted  # the minimal object got the spec default, and its rules ran


@pytest.mark.parametrize("schema", schemas())
def test_schema_is_structural(schema: dict[str, Any]) -> None:
    untyped, open_nodes = [], []
    for path, node, _ in nodes(schema):
        # Structural: a type everywhere but on int-or-string and preserve-unknown-fields nodes.
        exempt = node.get("x-kubernetes-int-or-string") or (path and node.get("x-kubernetes-preserve-unknown-fields"))
        if "type" not in node and not exempt:
            untyped.append(path or "<root>")
        if node.get("x-kubernetes-preserve-unknown-fields"):
            open_nodes.append(path)
        for keyword in ("anyOf", "allOf", "oneOf"):  # structural: no type or default inside these
            for branch in node.get(keyword, []):
                if keyword != "anyOf" or not node.get("x-kubernetes-int-or-string"):
                    assert "default" not in branch and "description" not in branch, f"{path}: {keyword}"
    assert untyped == []
    assert set(open_nodes) <= PRESERVE_UNKNOWN_ALLOWED


@pytest.mark.parametrize("schema", schemas())
def test_transition_rules_only_where_the_server_allows_them(schema: dict[str, Any]) -> None:
    """`oldSelf` needs a node that can be matched to its old value: no atomic or set list on the way."""
    for path, node, lists in nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            if re.search(r"\boldSelf\b", rule["rule"]):
                assert all(outer.get("x-kubernetes-list-type") == "map" for outer in lists), path


def referenced(node: dict[str, Any], dotted: str) -> dict[str, Any] | None:
    for name in [part for part in dotted.split(".") if part]:
        node = node.get("properties", {}).get(name)
        if node is None:
            return None
    return node


def size(node: dict[str, Any]) -> int | None:
    """Largest number of elements (lists, maps) or characters (strings) a value of `node` can have."""
    if node.get("type") == "array":
        items = node.get("items", {})
        item = size(items) if items.get("type") in ("string", "array") else 1
        return None if "maxItems" not in node or item is None else node["maxItems"] * item
    if node.get("type") == "string":
        return node.get("maxLength")
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        return node.get("maxProperties")
    return 1


@pytest.mark.parametrize("schema", schemas())
def test_cel_cost_is_bounded_where_rules_iterate(schema: dict[str, Any]) -> None:
    """A rule that iterates needs bounded inputs; rules inside lists run once per element.

    Map lookups (`'key' in self` on a map) are constant cost in the server's estimator and need no
    bound; iterating a list or splitting a string costs its size. The estimate multiplies the sizes
    of what a rule iterates by the length of every list around it.
    """
    for path, node, lists in nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            text = rule["rule"]
            if not ITERATING.search(text):
                continue
            cost = 1
            for outer in lists:
                outer_size = outer.get("maxItems") if outer.get("type") == "array" else outer.get("maxProperties", 1)
                assert outer_size is not None, f"{path}: a rule inside an unbounded list ({text})"
                cost *= outer_size
            for dotted in set(SELF_PATH.findall(text)):
                target = referenced(node, dotted)
                if target is None or target.get("type") == "object":
                    continue
                target_size = size(target)
                assert target_size is not None, f"{path}: `self{dotted}` has no maxItems/maxLength ({text})"
                cost *= max(target_size, 1)
            assert cost <= PER_RULE_COST_LIMIT, f"{path}: estimated cost {cost} ({text})"


SHARED_DB = {"database": {"urlSecretRef": {"name": "pg"}}}
MANY_PODS_WITHOUT_DATABASE = {
    "replicas": {"replicas": 2},
    "kubectl-scale": {"replicas": 5, "ocr": {"psm": 6}},  # the scale subresource writes spec.replicas
    "autoscaling": {"autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": "1"}}},
}
ONE_POD_OR_SHARED_DATABASE = {
    "one": {"replicas": 1},
    "none": {"replicas": 0},
    "autoscaling-off": {"replicas": 1, "autoscaling": {"minReplicas": 2, "maxReplicas": 5}},
    "autoscaling-to-one": {
        "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 1},
        "resources": {"requests": {"cpu": "1"}},
    },
    "replicas-with-db": {"replicas": 3, **SHARED_DB},
    "autoscaling-with-db": {"autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": "1"}}, **SHARED_DB},
}


def ocr_deployment(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": constants.API_VERSION, "kind": constants.KIND, "metadata": {"name": "ocr"}, "spec": spec}


@pytest.mark.parametrize("path", SHIPPED_CRDS, ids=crd_id)
@pytest.mark.parametrize("spec", MANY_PODS_WITHOUT_DATABASE.values(), ids=MANY_PODS_WITHOUT_DATABASE.keys())
def test_more_than_one_pod_without_a_database_is_refused_with_a_message_naming_it(
    path: Path, spec: dict[str, Any]
) -> None:
    for _, schema in versions(path):
        _, errors = admit(ocr_deployment(spec), schema)
        assert len(errors) == 1, errors
        assert errors[0].startswith(".spec.replicas: ") and "needs spec.database" in errors[0], errors


@pytest.mark.parametrize("path", SHIPPED_CRDS, ids=crd_id)
@pytest.mark.parametrize("spec", ONE_POD_OR_SHARED_DATABASE.values(), ids=ONE_POD_OR_SHARED_DATABASE.keys())
def test_one_pod_or_a_shared_database_is_admitted(path: Path, spec: dict[str, Any]) -> None:
    for _, schema in versions(path):
        assert admit(ocr_deployment(spec), schema)[1] == []
