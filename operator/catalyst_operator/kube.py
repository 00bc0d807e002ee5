"""The operator's only door to the Kubernetes API: raw JSON requests through the official client.

Objects stay plain dicts (no generated models) so that what the builders produce is exactly
what is sent, and a stored object that a typed model would reject cannot break a reconcile.
Connection settings come from one `kubernetes.client.Configuration`; `connection_info` hands
the same endpoint and credentials to kopf, so both clients always talk to one cluster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final

import kopf
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

FIELD_MANAGER: Final = "catalyst-ocr-operator"
"""The one field manager every server-side apply uses, so ownership of fields stays with us."""

REQUEST_TIMEOUT_SECONDS: Final = 30.0

Manifest = dict[str, Any]


class CredentialsError(Exception):
    """Neither an in-cluster service account nor a usable kubeconfig."""


class KubeApiError(Exception):
    """A non-2xx answer from the API server, with the Status object's reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> k8s_client.Configuration:
    """In-cluster service account first, then KUBECONFIG / ~/.kube/config (kopf's own order)."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None and context is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except k8s_config.ConfigException:
            pass
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    except (k8s_config.ConfigException, OSError) as error:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise CredentialsError(f"no cluster credentials: not running in a pod, and {where}: {error}") from error
    return configuration


def connection_info(configuration: k8s_client.Configuration) -> kopf.ConnectionInfo:
    """kopf's view of the same endpoint and credentials the official client uses."""
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


class KubeApi:
    """Blocking JSON requests against one API server. Thread-safe (one urllib3 pool)."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self.configuration = configuration
        self._client = k8s_client.ApiClient(configuration)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def get(self, path: str) -> Manifest | None:
        """The object at `path`, or None when it does not exist."""
        try:
            return self._request("GET", path)
        except KubeApiError as error:
            if error.not_found:
                return None
            raise

    def list(self, path: str, label_selector: Mapping[str, str] | None = None) -> list[Manifest]:
        """Items of a collection. The selector is sent, but callers must not rely on it being honoured."""
        query: list[tuple[str, str]] = []
        if label_selector:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(label_selector.items()))))
        answer = self._request("GET", path, query=query)
        items = answer.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def apply(self, path: str, manifest: Mapping[str, Any]) -> Manifest:
        """Server-side apply under our field manager, taking over conflicting fields (force)."""
        return self._request(
            "PATCH",
            path,
            body=manifest,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        )

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> Manifest:
        return self._request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, path: str, uid: str | None = None) -> None:
        """Delete in the background (the garbage collector takes dependents); only this very object."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._request("DELETE", path, body=body, content_type="application/json")
        except KubeApiError as error:
            if not error.not_found:
                raise

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        query: Sequence[tuple[str, str]] = (),
    ) -> Manifest:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        _, url, headers, serialized, _ = self._client.param_serialize(
            method,
            path,
            query_params=list(query) or None,
            header_params=headers,
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(method, url, headers, serialized, _request_timeout=REQUEST_TIMEOUT_SECONDS)
        response.read()  # type: ignore[no-untyped-call]
        text = (response.data or b"").decode("utf-8", errors="replace")
        if not 200 <= response.status <= 299:
            raise _error_from(response.status, text)
        decoded = json.loads(text) if text else {}
        return decoded if isinstance(decoded, dict) else {"items": decoded}


def _error_from(status: int, text: str) -> KubeApiError:
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        return KubeApiError(status, str(payload.get("reason") or ""), str(payload.get("message") or ""))
    return KubeApiError(status, "", text[:200])
