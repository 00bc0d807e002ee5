"""The operator image, run with exactly the args, env and security context of
manifests/operator/deployment.yaml (read from the manifest, not copied), against a KMock API
server on the Docker bridge's gateway, reconciles manifests/samples/basic.yaml.

It also runs under a uid the image does not know and without POD_ID, as Kubernetes may run it
(`runAsUser`): the operator must not need a passwd entry (it crashed in kopf's getpass before).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from catalyst_operator.resources import DEPLOYMENTS, OCR_DEPLOYMENTS, SERVICES
from catalyst_operator.testing import ClusterEmulator, Harness, eventually, register_crd
from images_support import OPERATOR_IMAGE, REGISTRY, docker, empty_dir_flags, plain_env, running, security_flags

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
POD_NAME = "catalyst-ocr-operator-5d8c7b9f4-image"
KUBECONFIG_PATH = "/etc/catalyst-ocr/kubeconfig"


def operator_manifest() -> tuple[dict[str, Any], dict[str, Any]]:
    documents = yaml.safe_load_all((REPO / "manifests" / "operator" / "deployment.yaml").read_text(encoding="utf-8"))
    (deployment,) = [doc for doc in documents if doc and doc["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge: reachable from containers, not from outside."""
    (config, *_) = json.loads(docker("network", "inspect", "bridge", "-f", "{{json .IPAM.Config}}").stdout)
    # Docker 20.10 leaves Gateway out when it chose the default one: the subnet's first address.
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


def kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "operator", "user": {"token": "image-test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "operator"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o644)  # readable by the container's uid, like a mounted Secret
    return path


@pytest.mark.parametrize("unknown_uid", [False, True], ids=["as-the-manifest-runs-it", "unknown-uid-without-pod-id"])
async def test_the_operator_image_reconciles_the_basic_sample(tmp_path: Path, unknown_uid: bool) -> None:
    pod, container = operator_manifest()
    if REGISTRY == "ghcr.io/catalyst-ocr":
        assert container["image"] == OPERATOR_IMAGE, "the manifest runs the image build-images.sh tags"
    flags = [*security_flags(pod, container), *empty_dir_flags(pod, container, tmp_path / "volumes")]
    env = plain_env(container, POD_NAME)
    assert "--read-only" in flags and "--cap-drop" in flags and env.get("POD_ID") == POD_NAME
    if unknown_uid:
        flags[flags.index("--user") + 1] = "4242:4242"
        env.pop("POD_ID")

    sample = yaml.safe_load((REPO / "manifests" / "samples" / "basic.yaml").read_text(encoding="utf-8"))
    async with ClusterEmulator() as cluster, kmock.Server(cluster, host=bridge_gateway()):
        cluster.resources.load_bundled()
        register_crd(cluster)
        k8s = Harness(cluster, "default")
        config = kubeconfig(tmp_path / "kubeconfig", str(cluster.url).rstrip("/"))
        flags += ["--mount", f"type=bind,source={config},target={KUBECONFIG_PATH},readonly"]
        env["KUBECONFIG"] = KUBECONFIG_PATH
        with running(OPERATOR_IMAGE, *flags, env=env, args=tuple(container.get("args", []))) as operator:
            await k8s.create(OCR_DEPLOYMENTS, {**sample, "metadata": {**sample["metadata"], "namespace": "default"}})
            name = sample["metadata"]["name"]
            deployment = await eventually(lambda: k8s.stored(DEPLOYMENTS, name), within=60)
            assert await eventually(lambda: k8s.stored(SERVICES, name), within=30)
            status = await eventually(lambda: (k8s.cr(name) or {}).get("status", {}).get("conditions"), within=30)
            assert {condition["type"] for condition in status} >= {"Ready"}, status
            (child,) = deployment["spec"]["template"]["spec"]["containers"]
            assert child["image"] == env["CATALYST_OPERATOR_DEFAULT_IMAGE"]

            # kopf's liveness endpoint, as the manifest's probe asks it (inside the pod's network).
            liveness = next(arg for arg in container["args"] if arg.startswith("--liveness="))
            url = liveness.partition("=")[2].replace("0.0.0.0", "127.0.0.1")
            probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=4)"
            await asyncio.to_thread(docker, "exec", operator.name, "python", "-c", probe)

            # Blocking docker calls go to a thread: KMock answers on this event loop meanwhile.
            await asyncio.to_thread(docker, "kill", "--signal", "TERM", operator.name)
            assert await asyncio.to_thread(operator.wait_exit, 40) == 0, operator.logs()[-3000:]
        assert "getpwuid" not in operator.log and "Traceback" not in operator.log, operator.log[-3000:]
        broken = [e for e in cluster.errors if not (isinstance(e, kmock.KubernetesError) and e.status < 500)]
        assert not broken, broken
