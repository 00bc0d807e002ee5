"""The Secrets an `OcrDeployment` references: are they there, and a hash of what they hold.

The hash goes onto the pod template, so rotating a Secret rolls the pods. Values are read only
to be hashed: they are never logged, never returned, never stored (only the digest is). Which
custom resources reference which Secret is remembered here too, so a Secret event — a rotation,
or a missing Secret finally created — reconciles exactly the custom resources that use it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from catalyst_operator.kube import KubeApi
from catalyst_operator.resources import SECRETS
from catalyst_operator.spec import SecretRef
from catalyst_operator.status import MissingSecret


@dataclass(frozen=True)
class SecretsState:
    digest: str
    """sha256 over the referenced keys' (still base64-encoded) values; empty input hashes too."""
    missing: tuple[MissingSecret, ...]


def read_secrets(api: KubeApi, namespace: str, refs: Iterable[SecretRef]) -> SecretsState:
    """Look every reference up; a whole-Secret reference (`key` None) hashes all its keys."""
    digest = hashlib.sha256()
    missing: list[MissingSecret] = []
    fetched: dict[str, dict[str, str] | None] = {}
    for ref in refs:
        if ref.name not in fetched:
            secret = api.get(SECRETS.object_path(namespace, ref.name))
            fetched[ref.name] = None if secret is None else _data(secret)
        data = fetched[ref.name]
        if data is None:
            missing.append(MissingSecret(ref.name, ref.key, secret_exists=False))
            continue
        if ref.key is not None and ref.key not in data:
            missing.append(MissingSecret(ref.name, ref.key, secret_exists=True))
            continue
        keys = [ref.key] if ref.key is not None else sorted(data)
        for key in keys:
            for part in (ref.name, key, data[key]):
                digest.update(part.encode())
                digest.update(b"\0")
    return SecretsState(digest.hexdigest(), tuple(missing))


def _data(secret: dict[str, object]) -> dict[str, str]:
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    merged: dict[str, str] = {}
    if isinstance(data, dict):
        merged.update({str(k): str(v) for k, v in data.items()})
    if isinstance(string_data, dict):  # only ever seen on objects that never went through an API server
        merged.update({str(k): str(v) for k, v in string_data.items()})
    return merged


class SecretReferences:
    """Which custom resources (namespace, name) read which Secret (namespace, name). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_owner: dict[tuple[str, str], frozenset[str]] = {}

    def remember(self, namespace: str, owner: str, secret_names: Iterable[str]) -> None:
        with self._lock:
            self._by_owner[(namespace, owner)] = frozenset(secret_names)

    def forget(self, namespace: str, owner: str) -> None:
        with self._lock:
            self._by_owner.pop((namespace, owner), None)

    def owners_of(self, namespace: str, secret_name: str) -> list[str]:
        with self._lock:
            return sorted(
                owner for (ns, owner), names in self._by_owner.items() if ns == namespace and secret_name in names
            )
