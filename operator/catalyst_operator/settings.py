"""Operator settings, read once from `CATALYST_OPERATOR_*` environment variables.

`ENV_VARS` is the one list of names: the docs table and the Deployment manifest are checked
against it. Values are validated here so a typo fails the start, not the first reconcile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Final, TypeVar

from ocr_service.contract import DEFAULT_IMAGE

PACKAGE: Final = "catalyst-ocr"


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:  # a source checkout that was never installed
        return "0.0.0"


ENV_VARS: Final = {
    "CATALYST_OPERATOR_DEFAULT_IMAGE": "image for OcrDeployments that name none (default: the release image)",
    "CATALYST_OPERATOR_METRICS_PORT": "port of the operator's /metrics (default 8080; 0 disables)",
    "CATALYST_OPERATOR_METRICS_ADDRESS": "address /metrics listens on (default 0.0.0.0, all interfaces)",
    "CATALYST_OPERATOR_RESYNC_SECONDS": "re-check an OcrDeployment nothing reconciled for this long (default 60)",
    "CATALYST_OPERATOR_DISCOVERY_TTL_SECONDS": "how long an API discovery answer is reused (default 10)",
    "CATALYST_OPERATOR_WATCH_SERVER_TIMEOUT": "seconds a watch request asks the API server to keep open (default 300)",
}


N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A `CATALYST_OPERATOR_*` variable with a value the operator cannot use."""


@dataclass(frozen=True)
class OperatorSettings:
    default_image: str
    metrics_port: int = 8080
    metrics_address: str = "0.0.0.0"
    resync_seconds: float = 60.0
    discovery_ttl_seconds: float = 10.0
    watch_server_timeout: int = 300
    """Sent as the watch's `timeoutSeconds`: an integer on the wire (`300.0` is a 400 from the API server)."""

    @property
    def watch_client_timeout(self) -> float:
        """A little longer than the server's, so the server closes first and no request hangs forever."""
        return self.watch_server_timeout + 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if environ is None else environ
        return cls(
            default_image=env.get("CATALYST_OPERATOR_DEFAULT_IMAGE") or f"{DEFAULT_IMAGE}:{package_version()}",
            metrics_port=_number(env, "CATALYST_OPERATOR_METRICS_PORT", 8080, 0, 65535, int),
            metrics_address=env.get("CATALYST_OPERATOR_METRICS_ADDRESS") or "0.0.0.0",
            resync_seconds=resync_seconds_from_env(env),
            discovery_ttl_seconds=_number(env, "CATALYST_OPERATOR_DISCOVERY_TTL_SECONDS", 10.0, 0.0, 3600.0, float),
            watch_server_timeout=_number(env, "CATALYST_OPERATOR_WATCH_SERVER_TIMEOUT", 300, 10, 3600, int),
        )


def resync_seconds_from_env(environ: Mapping[str, str] | None = None) -> float:
    """The resync period alone: kopf needs it when the handlers are registered, before `from_env` runs."""
    return _number(
        os.environ if environ is None else environ, "CATALYST_OPERATOR_RESYNC_SECONDS", 60.0, 1.0, 86400.0, float
    )


def _number(env: Mapping[str, str], name: str, default: N, low: N, high: N, kind: type[N]) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} must be between {low} and {high}")
    return value
