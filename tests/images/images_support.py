"""Running the built images as Kubernetes runs them: docker flags derived from pod specs.

The flags are computed from the same objects a cluster would get (the operator's own builders for
the service, the install manifest for the operator), so a change there changes what is tested.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalyst_operator.builders import BuildContext, build_children
from catalyst_operator.settings import package_version
from catalyst_operator.spec import parse_spec

REGISTRY = os.environ.get("IMAGE_REGISTRY", "ghcr.io/catalyst-ocr")
TAG = os.environ.get("IMAGE_TAG", package_version())
SERVICE_IMAGE = f"{REGISTRY}/catalyst-ocr:{TAG}"
OPERATOR_IMAGE = f"{REGISTRY}/catalyst-ocr-operator:{TAG}"
DEVELOPMENT_IMAGE = f"{REGISTRY}/catalyst-ocr:{TAG}-dev"
DOCKER_ENV = {**os.environ, "DOCKER_API_VERSION": os.environ.get("DOCKER_API_VERSION", "1.41")}


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check, env=DOCKER_ENV
    )


def security_flags(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """`docker run` flags for a pod's and container's securityContext (the container's wins)."""
    context = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    flags: list[str] = []
    if "runAsUser" in context:
        flags += ["--user", f"{context['runAsUser']}:{context.get('runAsGroup', context['runAsUser'])}"]
    if context.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    for capability in (context.get("capabilities") or {}).get("drop", []):
        flags += ["--cap-drop", capability]
    return flags


def empty_dir_flags(pod: Mapping[str, Any], container: Mapping[str, Any], scratch: Path) -> list[str]:
    """A fresh world-writable host directory (what an emptyDir is) at every path where the container
    mounts an emptyDir. Not `--tmpfs`: Docker copies the image directory's mode onto a tmpfs and
    makes it root's, which an emptyDir never is (that hid nothing and broke the data dir)."""
    empty = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
    flags: list[str] = []
    for mount in container.get("volumeMounts", []):
        if mount["name"] in empty:
            source = scratch / mount["name"]
            source.mkdir(parents=True, exist_ok=True)
            source.chmod(0o777)
            flags += ["--mount", f"type=bind,source={source},target={mount['mountPath']}"]
    return flags


def plain_env(container: Mapping[str, Any], pod_name: str) -> dict[str, str]:
    """The container's env with literal values, and the downward API's `metadata.name` resolved."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
    return env


def service_pod(cr: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The pod spec, container and environment (its env and ConfigMap) the operator gives `cr`."""
    ctx = BuildContext(default_image=SERVICE_IMAGE, monitoring_available=False, secret_hash="0")
    children = {child["kind"]: child for child in build_children(cr, parse_spec(cr), ctx)}
    pod = children["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {**{k: str(v) for k, v in children["ConfigMap"]["data"].items()}, **plain_env(container, "ocr-0")}
    return pod, container, env


@dataclass
class Container:
    """A detached container; its log is kept after it has stopped."""

    name: str
    log: str = field(default="")

    def state(self) -> dict[str, Any]:
        return dict(json.loads(docker("inspect", "-f", "{{json .State}}", self.name).stdout))

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_healthy(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                raise AssertionError(f"{self.name} stopped: {state}\n{self.logs()[-4000:]}")
            if (state.get("Health") or {}).get("Status") == "healthy":
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} not healthy after {within}s: {self.state()}\n{self.logs()[-4000:]}")

    def wait_exit(self, within: float) -> int:
        result = docker("wait", self.name, timeout=within)
        return int(result.stdout.strip())


@contextlib.contextmanager
def running(
    image: str, *flags: str, env: Mapping[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Container]:
    """`docker run -d` the image; on exit its log is printed (pytest shows it on failure) and it is removed."""
    name = f"catalyst-ocr-test-{uuid.uuid4().hex[:10]}"
    env_flags = [flag for key, value in (env or {}).items() for flag in ("-e", f"{key}={value}")]
    docker("run", "-d", "--name", name, *flags, *env_flags, image, *args)
    container = Container(name)
    try:
        yield container
    finally:
        container.log = container.logs()
        print(f"--- {name} ({image}) log ---\n{container.log[-8000:]}")
        docker("rm", "-f", name, check=False)
