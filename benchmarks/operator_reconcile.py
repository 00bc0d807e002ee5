"""Operator reconcile benchmark: N OcrDeployments against an in-memory API server (KMock).

    .venv/bin/python benchmarks/operator_reconcile.py            # 200 custom resources
    .venv/bin/python benchmarks/operator_reconcile.py --quick    # 20, for CI (a few seconds)

The operator runs as it does in a cluster — the `catalyst-ocr-operator` process (`--standalone
--all-namespaces`, credentials from a KUBECONFIG) — against `catalyst_operator.testing
.ClusterEmulator` in this process. Every custom resource references one Secret, so Secret
reads and hashing are part of each reconcile. Printed (markdown):

- create: wall time from the first POST until every resource has its ConfigMap, Service,
  Deployment and a status; API requests per resource (reads, writes) the operator sent;
- no-op resync, twice: an operator restart (kopf resumes every resource with empty caches),
  then one round of the resync timer (watch caches warm, the steady state): requests per
  resource, and writes in total (the promise is zero);
- the operator process's peak resident memory (RSS), sampled every 100 ms.

KMock answers from memory on loopback, so times measure the operator (kopf, the client,
reconcile logic), not an API server's latency; a real cluster adds its round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import kmock
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

from catalyst_operator.resources import CONFIG_MAPS, DEPLOYMENTS, SECRETS, SERVICES
from catalyst_operator.testing import ClusterEmulator, Harness, register_crd

NAMESPACE = "bench"
STEP_TIMEOUT_SECONDS = 600.0
TIMER_SECONDS = 15.0
"""The resync period of the restarted operator: long enough for its resume to finish first."""


def kubeconfig(directory: Path, server: str) -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "bench", "user": {"token": "bench"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "bench"}}],
                "current-context": "kmock",
            }
        )
    )
    return path


class OperatorProcess:
    """The operator as a child process, with its peak RSS sampled in the background."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.peak_rss = 0
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "catalyst_operator", "run", "--standalone", "--all-namespaces", "--quiet",
            env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self._sampler = asyncio.create_task(self._sample(psutil.Process(self.process.pid)))

    async def _sample(self, process: psutil.Process) -> None:
        while True:
            try:
                self.peak_rss = max(self.peak_rss, process.memory_info().rss)
            except psutil.Error:
                return
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._sampler:
            self._sampler.cancel()
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def operator_requests(k8s: Harness, since: int) -> tuple[int, int]:
    """(reads, writes) the operator sent after request number `since` (the benchmark's own excluded)."""
    ours = [r for r in k8s.requests()[since:] if not r.headers.get("User-Agent", "").startswith("kmock/")]
    writes = sum(1 for r in ours if r.method.value.upper() in ("POST", "PUT", "PATCH", "DELETE"))
    return len(ours) - writes, writes


def reconcile_reads(k8s: Harness, since: int) -> list[str]:
    """Names of the resources the operator read by name after request `since`: one per reconcile, which starts so."""
    prefix = f"/apis/ocr.catalyst.dev/v1alpha1/namespaces/{NAMESPACE}/ocrdeployments/"
    return [
        r.url.path.removeprefix(prefix)
        for r in k8s.requests()[since:]
        if r.method.value == "GET" and r.url.path.startswith(prefix) and "/" not in r.url.path.removeprefix(prefix)
    ]


async def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run(count: int) -> None:
    async with ClusterEmulator() as cluster, kmock.Server(cluster):
        cluster.resources.load_bundled()
        register_crd(cluster)
        k8s = Harness(cluster, NAMESPACE)
        names = [f"ocr-{index:04d}" for index in range(count)]
        with tempfile.TemporaryDirectory() as scratch:
            env = {
                **os.environ,
                "KUBECONFIG": str(kubeconfig(Path(scratch), str(cluster.url).rstrip("/"))),
                "KUBERNETES_SERVICE_HOST": "",
                "CATALYST_OPERATOR_METRICS_PORT": "0",
                "CATALYST_OPERATOR_RESYNC_SECONDS": "3600",
            }
            operator = OperatorProcess(env)
            await operator.start()
            await asyncio.sleep(2.0)  # kopf discovers and starts watching before the load begins
            url = base64.b64encode(b"postgresql://db/ocr").decode()
            await k8s.create(
                SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"url": url}}
            )

            def created() -> bool:
                return all(
                    k8s.stored(CONFIG_MAPS, f"{name}-config")
                    and k8s.stored(SERVICES, name)
                    and k8s.stored(DEPLOYMENTS, name)
                    and (k8s.cr(name) or {}).get("status")
                    for name in names
                )

            mark = len(k8s.requests())
            started = time.perf_counter()
            for name in names:
                await k8s.create_cr(name, {"replicas": 1, "database": {"urlSecretRef": {"name": "db", "key": "url"}}})
            await wait_until(created, "every resource's children and status")
            create_seconds = time.perf_counter() - started
            await k8s.settle(quiet=2.0, within=STEP_TIMEOUT_SECONDS)
            create_reads, create_writes = operator_requests(k8s, mark)

            await operator.stop()
            mark = len(k8s.requests())
            resync = OperatorProcess({**env, "CATALYST_OPERATOR_RESYNC_SECONDS": str(TIMER_SECONDS)})
            started = time.perf_counter()
            await resync.start()
            await wait_until(lambda: set(reconcile_reads(k8s, mark)) >= set(names), "every resource to be resumed")
            await k8s.settle(quiet=1.0, within=STEP_TIMEOUT_SECONDS)
            restart_seconds = time.perf_counter() - started
            restart_reads, restart_writes = operator_requests(k8s, mark)

            # Steady state: one round of the resync timer over every resource, watch caches warm.
            mark = len(k8s.requests())
            await wait_until(lambda: set(reconcile_reads(k8s, mark)) >= set(names), "a timer round over every resource")
            await asyncio.sleep(0.5)
            timer_reconciles = len(reconcile_reads(k8s, mark))
            timer_reads, timer_writes = operator_requests(k8s, mark)
            peak_rss = max(operator.peak_rss, resync.peak_rss)
            await resync.stop()
        broken = [e for e in cluster.errors if not (isinstance(e, kmock.KubernetesError) and e.status < 500)]
        if broken:
            raise SystemExit(f"the emulated API server failed {len(broken)} times, e.g. {broken[0]!r}")

    print(f"## Operator reconcile benchmark: {count} OcrDeployments against KMock\n")
    print("| phase | wall time | reads / resource | writes / resource | writes total |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| create | {create_seconds:.2f} s ({create_seconds / count * 1000:.1f} ms/resource) "
        f"| {create_reads / count:.1f} | {create_writes / count:.1f} | {create_writes} |"
    )
    print(
        f"| no-op resync: restart (kopf resumes all) | {restart_seconds:.2f} s incl. start-up "
        f"| {restart_reads / count:.1f} | {restart_writes / count:.2f} | {restart_writes} |"
    )
    print(
        f"| no-op resync: timer (steady state, {timer_reconciles} reconciles) | every {TIMER_SECONDS:.0f} s "
        f"| {timer_reads / timer_reconciles:.1f} | {timer_writes / timer_reconciles:.2f} | {timer_writes} |"
    )
    print(f"\noperator peak RSS: {peak_rss / 2**20:.1f} MiB")
    resync_writes = restart_writes + timer_writes
    if resync_writes:
        raise SystemExit(f"a no-op resync sent {resync_writes} writes (expected none)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="number of OcrDeployments (default 200)")
    parser.add_argument("--quick", action="store_true", help="20 resources, for CI")
    args = parser.parse_args()
    asyncio.run(run(20 if args.quick else args.count))


if __name__ == "__main__":
    main()
