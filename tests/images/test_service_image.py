"""The service image, run as the operator's pods run it: uid 1000, read-only root filesystem with
tmpfs where the pod has emptyDirs, every capability dropped, no-new-privileges, the operator's
env and ConfigMap. It reads a real scan right, its HEALTHCHECK turns healthy, and SIGTERM drains."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import pytest
from images_support import SERVICE_IMAGE, docker, empty_dir_flags, running, security_flags, service_pod
from rapidfuzz.distance import Levenshtein
from suite_support import free_port

from ocr_service.contract import EnvVar

pytestmark = pytest.mark.timeout(240)

SAMPLE_CR = {
    "apiVersion": "ocr.catalyst.dev/v1alpha1",
    "kind": "OcrDeployment",
    "metadata": {"name": "ocr", "namespace": "default", "uid": "image-test", "generation": 1},
    "spec": {"replicas": 1},
}


def cer(text: str, truth: str) -> float:
    return Levenshtein.distance(" ".join(text.split()), " ".join(truth.split())) / max(1, len(" ".join(truth.split())))


def as_kubernetes_runs_it(port: int, scratch: Path) -> tuple[list[str], dict[str, str]]:
    pod, container, env = service_pod(SAMPLE_CR)
    flags = [*security_flags(pod, container), *empty_dir_flags(pod, container, scratch), "--network", "host"]
    # The pod's own network namespace is the host's here, so only the port moves (to a free one).
    env.update({str(EnvVar.PORT): str(port), str(EnvVar.HOST): "127.0.0.1", str(EnvVar.WORKERS): "1"})
    return flags, env


def test_the_service_image_reads_a_scan_turns_healthy_and_drains_on_sigterm(corpus_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    flags, env = as_kubernetes_runs_it(port, tmp_path)
    assert {"--read-only", "--user", "--cap-drop", "--mount"} <= set(flags), flags
    # The image's own HEALTHCHECK command, polled every 2 s instead of 15 s so the test is short.
    flags += ["--health-interval", "2s", "--health-start-period", "60s"]
    base = f"http://127.0.0.1:{port}"
    with running(SERVICE_IMAGE, *flags, env=env) as container:
        container.wait_healthy(within=90)
        assert docker("exec", container.name, "id", "-u").stdout.strip() == "1000"

        scan = corpus_dir / "phototest.tif"
        truth = (corpus_dir / "phototest.txt").read_text(encoding="utf-8")
        with httpx.Client(base_url=base, timeout=60) as client:
            answer = client.post("/v1/ocr", files={"file": (scan.name, scan.read_bytes())})
            assert answer.status_code == 200, answer.text
            assert cer(answer.json()["text"], truth) < 0.03, answer.json()["text"]

            # A slow request (a full-page scan) is in flight when SIGTERM comes: it still completes.
            big = corpus_dir / "8071_093.3B.tif"
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(
                    client.post, "/v1/ocr", params={"format": "text"}, files={"file": (big.name, big.read_bytes())}
                )
                time.sleep(1.0)
                assert not pending.done(), "the request should still be in flight"
                signalled = time.monotonic()
                docker("kill", "--signal", "TERM", container.name)
                drained = pending.result(timeout=60)
            assert drained.status_code == 200, drained.text
            assert len(drained.text.split()) > 50
            status = container.wait_exit(within=40)
            stopped_after = time.monotonic() - signalled
        assert status == 0, container.logs()[-3000:]
        assert stopped_after < 30, f"took {stopped_after:.1f}s to stop after SIGTERM"
