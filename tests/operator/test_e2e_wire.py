"""The wire types a real API server insists on, and the emulator check that holds every e2e test to them.

Issue 9: kopf sent `timeoutSeconds=300.0` from a float setting; KMock served it, a real API server
answers 400 and the operator never starts. `ClusterEmulator` now refuses such requests like the real
server (and the `cluster` fixture fails the test); these tests pin both halves: the check catches the
old float setting, and the operator as configured today sends only what a server accepts.
"""

from __future__ import annotations

import asyncio
import dataclasses

import kmock
import kubernetes
import pytest
from catalyst_operator import wire
from catalyst_operator.handlers import build_runtime
from catalyst_operator.kube import KubeApi
from catalyst_operator.settings import OperatorSettings, SettingsError
from catalyst_operator.testing import ClusterEmulator, OperatorThread, eventually, register_crd
from conftest import NAMESPACE


def check(params: dict[str, str]) -> wire.Violation | None:
    """A watch or list request with these query parameters."""
    return wire.violation("GET", params, "", "apps", is_watch_or_list=True)


def check_patch(params: dict[str, str], content_type: str, group: str = "apps") -> wire.Violation | None:
    return wire.violation("PATCH", params, content_type, group, is_watch_or_list=False)


def test_integer_parameters_must_parse_as_integers() -> None:
    refused = check({"watch": "true", "timeoutSeconds": "300.0"})
    assert refused == wire.Violation(
        400, "BadRequest", 'timeoutSeconds: strconv.ParseInt: parsing "300.0": invalid syntax'
    )
    assert check({"limit": "1e3"}) is not None and check({"gracePeriodSeconds": "None"}) is not None
    assert check({"watch": "true", "timeoutSeconds": "300", "limit": "500", "resourceVersion": "42"}) is None


def test_resource_version_booleans_and_patch_types() -> None:
    assert check({"watch": "true", "resourceVersion": "..."}) is not None
    assert check({"watch": "True", "allowWatchBookmarks": "1"}) is None
    assert check({"watch": "None"}) is not None
    apply = "application/apply-patch+yaml"
    assert check_patch({}, apply) == wire.Violation(
        422, "Invalid", "fieldManager: Required value: is required for apply patch"
    )
    assert check_patch({"fieldManager": "catalyst-ocr-operator", "force": "true"}, apply) is None
    assert check_patch({"force": "true"}, "application/merge-patch+json") is not None
    assert check_patch({}, "application/json") is not None
    strategic = "application/strategic-merge-patch+json"
    assert check_patch({}, strategic, group="apps") is None
    assert check_patch({}, strategic, group="") is None
    refused = check_patch({}, strategic, group="ocr.catalyst.dev")
    assert refused is not None and refused.status == 415


def test_the_watch_timeout_setting_is_an_integer() -> None:
    settings = OperatorSettings.from_env({"CATALYST_OPERATOR_WATCH_SERVER_TIMEOUT": "120"})
    assert settings.watch_server_timeout == 120 and isinstance(settings.watch_server_timeout, int)
    assert isinstance(OperatorSettings.from_env({}).watch_server_timeout, int)
    with pytest.raises(SettingsError, match="not an integer"):
        OperatorSettings.from_env({"CATALYST_OPERATOR_WATCH_SERVER_TIMEOUT": "300.0"})


async def run_operator(settings: OperatorSettings) -> tuple[ClusterEmulator, OperatorThread]:
    """Start the operator against a fresh emulator (not the `cluster` fixture, which fails on violations)."""
    async with ClusterEmulator() as emulator, kmock.Server(emulator):
        emulator.resources.load_bundled()
        register_crd(emulator)
        configuration = kubernetes.client.Configuration()
        configuration.host = str(emulator.url).rstrip("/")
        thread = OperatorThread(build_runtime(settings, KubeApi(configuration)), [NAMESPACE])
        await asyncio.to_thread(thread.start)
        try:
            await eventually(lambda: [r for r in emulator.history() if "watch" in r.params], within=20)
            await asyncio.sleep(0.5)  # every watcher has had its first try
        finally:
            await asyncio.to_thread(thread.stop)
        return emulator, thread


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the operator dies: wanted
async def test_the_old_float_setting_is_refused_like_a_real_api_server_would(
    operator_settings: OperatorSettings,
) -> None:
    old = dataclasses.replace(operator_settings, watch_server_timeout=300.0)  # type: ignore[arg-type]
    emulator, thread = await run_operator(old)
    assert "400" in repr(thread.error) or "invalid syntax" in repr(thread.error), thread.error  # as on a real cluster
    assert emulator.wire_violations
    assert all('parsing "300.0": invalid syntax' in violation for violation in emulator.wire_violations)


async def test_the_operator_sends_only_what_a_real_api_server_accepts(operator_settings: OperatorSettings) -> None:
    emulator, thread = await run_operator(operator_settings)
    assert thread.error is None
    assert emulator.wire_violations == []
    watches = [request for request in emulator.history() if "watch" in request.params]
    assert watches and all(request.params["timeoutSeconds"] == "300" for request in watches)
