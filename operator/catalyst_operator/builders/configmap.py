"""The ConfigMap holding the service's non-secret settings as `OCR_*` keys (read through envFrom).

Credentials never land here: the database and Redis URLs and the API keys reach the pods
through secretKeyRef and a Secret volume (see `deployment.py`). `render_config` is kept apart
from the object so the pod-template hash can be computed from exactly what the pods read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from catalyst_operator.builders.context import BuildContext
from catalyst_operator.builders.meta import child_metadata
from catalyst_operator.constants import COMPONENT_SERVER
from catalyst_operator.spec import OcrDeploymentSpec
from ocr_service.contract import CONTAINER_DATA_DIR, HTTP_PORT, SECRET_ENV_VARS, EnvVar


def configmap_name(instance: str) -> str:
    return f"{instance}-config"


def render_config(spec: OcrDeploymentSpec) -> dict[str, str]:
    """The `OCR_*` settings the pods get from the ConfigMap, as strings."""
    ocr = spec.ocr
    data = {
        EnvVar.HOST: "0.0.0.0",
        EnvVar.PORT: str(HTTP_PORT),
        EnvVar.DATA_DIR: CONTAINER_DATA_DIR,
        EnvVar.LANGUAGES: ",".join(spec.languages),
        EnvVar.DEFAULT_LANG: ocr.lang,
        EnvVar.DEFAULT_PSM: str(ocr.psm),
        EnvVar.DEFAULT_OEM: str(ocr.oem),
        EnvVar.DEFAULT_PREPROCESS: ocr.preprocess,
        EnvVar.TIMEOUT_SECONDS: str(ocr.timeout_seconds),
        EnvVar.MAX_UPLOAD_BYTES: str(ocr.max_upload_bytes),
        EnvVar.MAX_PIXELS: str(ocr.max_pixels),
        EnvVar.MAX_PAGES: str(ocr.max_pages),
        EnvVar.LOG_FORMAT: "json",
    }
    leaked = SECRET_ENV_VARS & set(data)
    if leaked:  # pragma: no cover - a guard against a future edit, checked by the tests too
        raise AssertionError(f"credentials must not be written to a ConfigMap: {sorted(leaked)}")
    return {str(key): value for key, value in sorted(data.items())}


def config_hash(config: Mapping[str, str], secret_hash: str) -> str:
    """sha256 of the rendered config and the Secrets' hash: the pod-template annotation's value.

    It changes exactly when what the pods read at start-up changes, so a new value rolls them.
    """
    canonical = json.dumps({"config": dict(config), "secrets": secret_hash}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_configmap(cr: Mapping[str, Any], spec: OcrDeploymentSpec, ctx: BuildContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(cr, spec, ctx, configmap_name(spec.name), COMPONENT_SERVER),
        "data": render_config(spec),
    }
