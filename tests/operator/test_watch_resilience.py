"""A watched kind whose CRD is removed must not stop the operator (`watch_resilience`).

kopf's real `infinite_watch` loop runs here over a stream that answers 404 the way a re-list does
right after a CRD is deleted: unwrapped, the error escapes (and kopf stops the operator); wrapped,
the loop pauses and lists again, and the events of the kind's return arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from catalyst_operator import handlers, watch_resilience
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching as kopf_watching
from kopf._cogs.structs.references import Resource

SERVICE_MONITORS = Resource("monitoring.coreos.com", "v1", "servicemonitors")
EVENT = {"type": "ADDED", "object": {"metadata": {"name": "back", "uid": "u1", "resourceVersion": "7"}}}


def removed_then_back() -> Any:
    """A per-stream watch whose first call meets a removed CRD (404) and whose second sees it back."""
    calls: list[int] = []

    async def continuous_watch(**_: Any) -> AsyncIterator[Any]:
        calls.append(1)
        if len(calls) == 1:
            raise kopf_errors.APINotFoundError(
                "the server could not find the requested resource", status=404, headers={}
            )
        yield EVENT

    return continuous_watch, calls


async def stream(iterations: int) -> list[Any]:
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0.01
    events = []
    async for event in kopf_watching.infinite_watch(
        settings=settings, resource=SERVICE_MONITORS, namespace=None, _iterations=iterations
    ):
        events.append(event)
    return events


async def test_unwrapped_a_removed_kind_escapes_kopfs_watch_loop(monkeypatch):
    watch, _ = removed_then_back()
    monkeypatch.setattr(kopf_watching, "continuous_watch", watch)
    with pytest.raises(kopf_errors.APINotFoundError):
        await stream(iterations=2)


async def test_wrapped_the_loop_pauses_lists_again_and_gets_the_kinds_events(monkeypatch):
    watch, calls = removed_then_back()
    monkeypatch.setattr(kopf_watching, "continuous_watch", watch_resilience.tolerate_removed_kinds(watch, 0.01))
    assert await stream(iterations=2) == [EVENT]
    assert len(calls) == 2


async def test_a_kind_long_gone_is_logged_once_and_its_return_once(monkeypatch, caplog):
    calls: list[int] = []

    async def gone_three_times(**_: Any) -> AsyncIterator[Any]:
        calls.append(1)
        if len(calls) <= 3:
            raise kopf_errors.APINotFoundError("not found", status=404, headers={})
        yield EVENT

    monkeypatch.setattr(
        kopf_watching, "continuous_watch", watch_resilience.tolerate_removed_kinds(gone_three_times, 0.01)
    )
    with caplog.at_level("INFO", logger=watch_resilience.__name__):
        assert await stream(iterations=4) == [EVENT]
    messages = [record.getMessage() for record in caplog.records if record.name == watch_resilience.__name__]
    assert len(messages) == 2, messages  # three 404s, one line; then one line for its return
    assert "is not served" in messages[0] and "is served again" in messages[1], messages


async def test_other_api_errors_still_stop_the_stream(monkeypatch):
    async def forbidden(**_: Any) -> AsyncIterator[Any]:
        raise kopf_errors.APIForbiddenError("forbidden", status=403, headers={})
        yield  # an async generator

    monkeypatch.setattr(kopf_watching, "continuous_watch", watch_resilience.tolerate_removed_kinds(forbidden, 0.01))
    with pytest.raises(kopf_errors.APIForbiddenError):
        await stream(iterations=1)


def test_the_operator_runs_with_the_wrapper_installed_once():
    assert handlers.watch_resilience is watch_resilience
    installed = kopf_watching.continuous_watch
    assert getattr(installed, "_catalyst_tolerates_removed_kinds", False)
    watch_resilience.install()  # importing the handlers again must not wrap twice
    assert kopf_watching.continuous_watch is installed
