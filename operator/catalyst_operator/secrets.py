"""The Secrets an `OcrDeployment` references: are they there, and a hash of what they hold.

The hash goes onto the pod template, so rotating a Secret rolls the pods. Values are read only
to be hashed: they are never logged, never returned, never stored (only the digest is). Which
custom resources reference which Secret is remembered here too, so a Secret event — a rotation,
or a missing Secret finally created — reconciles exactly the custom resources that use it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from catalyst_operator.kube import KubeApi
from catalyst_operator.resources import SECRETS
from catalyst_operator.spec import SecretRef
from catalyst_operator.status import MissingSecret


@dataclass(frozen=True)
class SecretsState:
    digest: str
    """sha256 over the referenced keys' (still base64-encoded) values; empty input hashes too."""
    missing: tuple[MissingSecret, ...]
    seen: dict[str, str | None]
    """Digest of each referenced Secret's whole data as read (None: absent), to judge later events."""


def secret_digest(secret: Mapping[str, Any] | None) -> str | None:
    """sha256 over a Secret's data (None for no Secret): equal digests mean nothing the pods read changed."""
    if secret is None:
        return None
    digest = hashlib.sha256()
    for key, value in sorted(_data(secret).items()):
        digest.update(f"{key}\0{value}\0".encode())
    return digest.hexdigest()


def read_secrets(api: KubeApi, namespace: str, refs: Iterable[SecretRef]) -> SecretsState:
    """Look every reference up; a whole-Secret reference (`key` None) hashes all its keys."""
    digest = hashlib.sha256()
    missing: list[MissingSecret] = []
    fetched: dict[str, dict[str, str] | None] = {}
    seen: dict[str, str | None] = {}
    for ref in refs:
        if ref.name not in fetched:
            secret = api.get(SECRETS.object_path(namespace, ref.name))
            fetched[ref.name] = None if secret is None else _data(secret)
            seen[ref.name] = secret_digest(secret)
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
    return SecretsState(digest.hexdigest(), tuple(missing), seen)


def _data(secret: Mapping[str, Any]) -> dict[str, str]:
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    merged: dict[str, str] = {}
    if isinstance(data, dict):
        merged.update({str(k): str(v) for k, v in data.items()})
    if isinstance(string_data, dict):  # only ever seen on objects that never went through an API server
        merged.update({str(k): str(v) for k, v in string_data.items()})
    return merged


class SecretReferences:
    """Which custom resources read which Secrets, and what those Secrets held then. Thread-safe.

    A Secret event reconciles only the resources whose last reconcile saw different content —
    at start-up kopf lists every Secret, and most of them have not changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_owner: dict[tuple[str, str], dict[str, str | None]] = {}

    def remember(self, namespace: str, owner: str, seen: Mapping[str, str | None]) -> None:
        with self._lock:
            self._by_owner[(namespace, owner)] = dict(seen)

    def owners_to_reconcile(self, namespace: str, secret_name: str, digest: str | None) -> list[str]:
        """Owners that read `secret_name` and saw something other than `digest` (None: now absent)."""
        with self._lock:
            return sorted(
                owner
                for (ns, owner), seen in self._by_owner.items()
                if ns == namespace and secret_name in seen and seen[secret_name] != digest
            )

    def forget(self, namespace: str, owner: str) -> None:
        with self._lock:
            self._by_owner.pop((namespace, owner), None)
