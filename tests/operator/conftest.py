"""Fixtures for the operator's end-to-end tests: an in-memory API server and the real operator.

`cluster` is a `ClusterEmulator` (kmock with the gaps the operator trips over closed) on a
loopback port, with the built-in kinds and the OcrDeployment CRD registered; `k8s` drives and
inspects it. `operator` runs the real kopf handlers against it in a background thread watching
one namespace; `start_operator` does the same on demand, for tests that prepare the cluster first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import kmock
import kubernetes
import pytest
from catalyst_operator.handlers import build_runtime
from catalyst_operator.kube import KubeApi
from catalyst_operator.runtime import Runtime
from catalyst_operator.settings import OperatorSettings
from catalyst_operator.testing import ClusterEmulator, Harness, OperatorThread, register_crd

NAMESPACE = "ocr-e2e"
TEST_IMAGE = "registry.example/catalyst-ocr:e2e"


@pytest.fixture
async def cluster() -> AsyncIterator[ClusterEmulator]:
    async with ClusterEmulator() as emulator, kmock.Server(emulator):
        emulator.resources.load_bundled()
        register_crd(emulator)
        yield emulator
        # What a real API server would have refused (it was refused here too): a wire-type bug.
        assert not emulator.wire_violations, f"requests a real API server refuses: {emulator.wire_violations}"
        # 4xx answers are part of the game (404 on a missing object); a 5xx means the emulator broke.
        broken = [e for e in emulator.errors if not (isinstance(e, kmock.KubernetesError) and e.status < 500)]
        assert not broken, f"the emulated API server failed to answer: {broken!r}"


@pytest.fixture
def k8s(cluster: ClusterEmulator) -> Harness:
    return Harness(cluster, NAMESPACE)


@pytest.fixture
def operator_settings(request: pytest.FixtureRequest) -> OperatorSettings:
    """Resync off (an hour) unless a test asks with `@pytest.mark.resync_seconds(N)`: everything
    else must happen through watch events, promptly — not because a timer came by."""
    marker = request.node.get_closest_marker("resync_seconds")
    resync = float(marker.args[0]) if marker else 3600.0
    return OperatorSettings(default_image=TEST_IMAGE, metrics_port=0, resync_seconds=resync, discovery_ttl_seconds=0.0)


@pytest.fixture
def resync_seconds(operator_settings: OperatorSettings) -> float:
    """The resync period of the running operator (set per test with the `resync_seconds` marker)."""
    return operator_settings.resync_seconds


@pytest.fixture
def runtime(cluster: ClusterEmulator, operator_settings: OperatorSettings) -> Runtime:
    configuration = kubernetes.client.Configuration()
    configuration.host = str(cluster.url).rstrip("/")
    return build_runtime(operator_settings, KubeApi(configuration))


@pytest.fixture
async def start_operator(runtime: Runtime) -> AsyncIterator[Callable[[], Awaitable[OperatorThread]]]:
    threads: list[OperatorThread] = []

    async def start() -> OperatorThread:
        thread = OperatorThread(runtime, [NAMESPACE])
        threads.append(thread)
        await asyncio.to_thread(thread.start)
        return thread

    yield start
    for thread in threads:
        await asyncio.to_thread(thread.stop)


@pytest.fixture
async def operator(start_operator: Callable[[], Awaitable[OperatorThread]]) -> OperatorThread:
    return await start_operator()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "resync_seconds(n): the operator's resync period in this test (default: off)")
    # kmock 0.8 loads its bundled resource list with a deprecated importlib call.
    config.addinivalue_line("filterwarnings", "ignore:read_binary is deprecated:DeprecationWarning")
