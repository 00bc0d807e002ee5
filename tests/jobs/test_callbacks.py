"""Completion callbacks: signed, retried with back-off after failures, never to hosts off the
allow-list. The receiver is a real HTTP server on loopback that verifies every signature."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_support import SECRET, Receiver, job_settings, pdf, running_app, wait_final, wait_until

from ocr_service.jobs import runtime as jobs_runtime
from ocr_service.jobs.callbacks import (
    CallbackDispatcher,
    backoff_seconds,
    check_callback_url,
)
from ocr_service.jobs.changes import PollIntervals
from ocr_service.jobs.errors import CallbackNotAllowed
from ocr_service.jobs.models import NewJob
from ocr_service.jobs.sqlstore import SqlJobStore
from ocr_service.options import OcrOptions


def test_the_allow_list_refuses_everything_else() -> None:
    allowed = ("hooks.example.com", "127.0.0.1:8080", "*.corp.example")
    assert check_callback_url("https://hooks.example.com/x", allowed)
    assert check_callback_url("http://127.0.0.1:8080/x", allowed)
    assert check_callback_url("https://a.b.corp.example/x", allowed)
    for url in (
        "http://127.0.0.1:9090/x",  # right host, wrong port
        "http://hooks.example.com.evil.test/x",
        "http://user:pw@hooks.example.com/x",
        "file:///etc/passwd",
        "http://corp.example/x",
        "http://[::1]/x",
        "not a url",
    ):
        with pytest.raises(CallbackNotAllowed):
            check_callback_url(url, allowed)
    with pytest.raises(CallbackNotAllowed, match="disabled"):
        check_callback_url("https://hooks.example.com/x", ())


def test_backoff_grows_exponentially() -> None:
    assert [backoff_seconds(n, 2.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


async def test_failed_deliveries_are_retried_with_backoff(store: SqlJobStore, receiver: Receiver) -> None:
    receiver.failures = 2
    job, _ = await store.create_job(
        NewJob(document=b"doc", options=OcrOptions(), page_numbers=(1,), callback_url=receiver.url)
    )
    await store.cancel_job(job.id)  # a final state: the callback is due
    dispatcher = CallbackDispatcher(
        store, secret=SECRET, allowed_hosts=("127.0.0.1",), poll_seconds=0.05, backoff_base=0.2
    )
    dispatcher.start()
    try:
        async with asyncio.timeout(15):
            while True:
                current = await store.get_job(job.id)
                if current is None or current.callback_state != "pending":
                    break
                await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
    assert current is not None and current.callback_state == "delivered"
    assert len(receiver.deliveries) == 3  # two failures, then success; never more
    assert all(d["signature_ok"] for d in receiver.deliveries)
    assert receiver.deliveries[-1]["body"]["job"]["status"] == "cancelled"


async def submit_and_await_delivery(client: httpx.AsyncClient, receiver: Receiver, within: float) -> dict[str, Any]:
    """Submit a one-page job with a callback to `receiver`; the job once its callback is delivered."""
    response = await client.post(
        "/v1/jobs", content=pdf(1), headers={"content-type": "application/pdf"}, params={"callback_url": receiver.url}
    )
    assert response.status_code == 202
    job = await wait_final(client, response.json()["id"])
    async with asyncio.timeout(within):
        while job["callback_state"] != "delivered":
            await asyncio.sleep(0.1)
            job = (await client.get(f"/v1/jobs/{job['id']}")).json()
    return job


async def test_a_job_calls_back_when_it_succeeds(tmp_path: Path, receiver: Receiver) -> None:
    receiver.failures = 1  # the first attempt fails; the retry (2 s back-off) succeeds
    async with running_app(job_settings(tmp_path, callback_secret=SECRET)) as client:
        job = await submit_and_await_delivery(client, receiver, within=20)
        assert job["status"] == "succeeded"
    assert len(receiver.deliveries) == 2 and all(d["signature_ok"] for d in receiver.deliveries)
    payload = receiver.deliveries[-1]["body"]
    assert payload["event"] == "job.finished"
    assert payload["job"]["id"] == job["id"] and payload["job"]["status"] == "succeeded"
    assert payload["job"]["pages_done"] == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_final_event_wakes_the_dispatcher_instead_of_its_poll(
    backend: str, tmp_path: Path, receiver: Receiver, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the dispatcher's own poll at a minute, the callback still goes out as the job finishes (change feed)."""
    monkeypatch.setattr(jobs_runtime, "CALLBACK_POLL", PollIntervals(fallback=60.0, live=60.0))
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else ""
    async with running_app(job_settings(tmp_path, callback_secret=SECRET, database_url=url)) as client:
        runtime = client.app.state.jobs  # type: ignore[attr-defined]
        await wait_until("the change feed live", lambda: bool(runtime.store.changes.live))  # PostgreSQL: LISTEN up
        await submit_and_await_delivery(client, receiver, within=30)  # half the dispatcher's poll
    assert len(receiver.deliveries) == 1 and receiver.deliveries[0]["signature_ok"]


async def test_stop_right_after_a_wake_ends_the_dispatcher(store: SqlJobStore) -> None:
    """A cancel (which wakes the dispatcher) just before shutdown must not leave stop() waiting forever."""
    for _ in range(5):
        dispatcher = CallbackDispatcher(store, secret=SECRET, allowed_hosts=("127.0.0.1",), poll_seconds=0.05)
        dispatcher.start()
        await asyncio.sleep(0.1)  # every loop found nothing and waits for a wake-up
        dispatcher.wake()
        await asyncio.sleep(0)  # the wake-up has completed their waits; they have not resumed yet
        async with asyncio.timeout(5):
            await dispatcher.stop()
