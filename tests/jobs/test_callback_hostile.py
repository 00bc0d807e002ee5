"""Hostile callback URLs (issue 10, item 4): refused at submission, and no delivery can stop the dispatcher.

Four jobs whose callback made httpx raise something other than `httpx.HTTPError` used to end all
four dispatcher tasks, silently, and with them every tenant's callbacks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from jobs_support import SECRET, Receiver, job_settings, pdf, running_app

from ocr_service import metrics
from ocr_service.jobs import callbacks
from ocr_service.jobs.callbacks import MAX_ATTEMPTS, CallbackDispatcher, check_callback_url
from ocr_service.jobs.errors import CallbackNotAllowed
from ocr_service.jobs.models import NewJob
from ocr_service.jobs.sqlstore import SqlJobStore
from ocr_service.options import OcrOptions

ALLOWED = ("127.0.0.1", "hooks.example.com")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x\x01",
        "http://127.0.0.1/x\ny",
        "http://127.0.0.1/x\r\nX-Injected: 1",
        "http://127.0.0.1/\tx",
        "http://127.0.0.1/x y",
        "http://127.0.0.1/x\x7f",
        "http://127.0.0.1/x\x85",
        "http://127.0.0.1/x\u00a0",
        "http://127.0.\t0.1/x",
        "http://hooks.example.com\\@evil.test/x",  # parsers disagree on the host
    ],
    ids=["soh", "lf", "crlf-header", "tab", "space", "del", "c1-nel", "nbsp", "tab-in-host", "backslash-at"],
)
def test_urls_with_control_characters_whitespace_or_two_readings_are_refused(url: str) -> None:
    with pytest.raises(CallbackNotAllowed) as refused:
        check_callback_url(url, ALLOWED)
    assert refused.value.status == 400


def test_percent_encoded_control_characters_are_fine() -> None:
    assert check_callback_url("http://127.0.0.1/x%01?y=%0A", ALLOWED)


async def test_submission_with_a_newline_in_the_callback_url_is_400(tmp_path: Path, receiver: Receiver) -> None:
    async with running_app(job_settings(tmp_path)) as client:
        for url in (receiver.url + "\n", receiver.url + "\x01"):
            response = await client.post(
                "/v1/jobs", content=pdf(1), headers={"content-type": "application/pdf"}, params={"callback_url": url}
            )
            assert response.status_code == 400, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/callback-not-allowed")


class ExplodingTransport(httpx.AsyncBaseTransport):
    """Forwards to the real network, except that paths under /boom raise what no HTTP error class covers."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/boom"):
            raise httpx.InvalidURL("simulated: a URL httpx refuses only at delivery")
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()


async def _final_callback_state(store: SqlJobStore, job_id: str) -> str | None:
    job = await store.get_job(job_id)
    assert job is not None
    return job.callback_state


async def _until_settled(store: SqlJobStore, job_ids: list[str], within: float) -> None:
    """Until no callback of `job_ids` is pending any more (bounded in time)."""
    async with asyncio.timeout(within):
        while True:
            states = [await _final_callback_state(store, job_id) for job_id in job_ids]
            if "pending" not in states:
                return
            await asyncio.sleep(0.05)


async def test_four_exploding_callbacks_do_not_stop_anyone_elses(store: SqlJobStore, receiver: Receiver) -> None:
    bad = []
    for n in range(4):
        job, _ = await store.create_job(
            NewJob(b"doc%d" % n, OcrOptions(), (1,), callback_url=f"http://127.0.0.1:{receiver.port}/boom{n}")
        )
        await store.cancel_job(job.id)
        bad.append(job.id)
    errors_before = _sample("ocr_job_callbacks_total", outcome="error") + _sample(
        "ocr_job_callbacks_total", outcome="retry"
    )
    dispatcher = CallbackDispatcher(
        store, secret=SECRET, allowed_hosts=("127.0.0.1",), poll_seconds=0.02, backoff_base=0.01, concurrency=4
    )
    dispatcher.start()
    assert dispatcher._client is not None
    await dispatcher._client.aclose()
    dispatcher._client = httpx.AsyncClient(transport=ExplodingTransport(), follow_redirects=False)
    try:
        await asyncio.sleep(0.3)  # every loop has met an exploding callback by now
        good, _ = await store.create_job(NewJob(b"good", OcrOptions(), (1,), callback_url=receiver.url))
        await store.cancel_job(good.id)
        dispatcher.wake()
        await _until_settled(store, [good.id, *bad], within=30)
        assert all(not task.done() for task in dispatcher._tasks), "a dispatcher task died"
        assert _sample("ocr_job_callback_dispatcher_up") == 1
    finally:
        await dispatcher.stop()
    assert await _final_callback_state(store, good.id) == "delivered"
    assert [await _final_callback_state(store, job_id) for job_id in bad] == ["failed"] * 4  # given up, said so
    assert len(receiver.deliveries) == 1
    counted = _sample("ocr_job_callbacks_total", outcome="error") + _sample("ocr_job_callbacks_total", outcome="retry")
    assert counted - errors_before >= 4 * (MAX_ATTEMPTS - 1)  # every failed attempt counted


async def test_attempts_that_never_recorded_an_outcome_still_end(store: SqlJobStore, receiver: Receiver) -> None:
    """A delivery that crashed its replica each time leaves its claim to expire; the claims count, and end."""
    job, _ = await store.create_job(NewJob(b"doc", OcrOptions(), (1,), callback_url=receiver.url))
    await store.cancel_job(job.id)
    for _ in range(MAX_ATTEMPTS):  # eight claims whose lease simply ran out
        assert await store.claim_callback(lease_seconds=0) is not None
    dispatcher = CallbackDispatcher(store, secret=SECRET, allowed_hosts=("127.0.0.1",), poll_seconds=0.02)
    dispatcher.start()
    try:
        await _until_settled(store, [job.id], within=10)
    finally:
        await dispatcher.stop()
    assert await _final_callback_state(store, job.id) == "failed"
    assert receiver.deliveries == []


def test_a_dispatcher_task_that_ends_on_its_own_is_reported() -> None:
    async def crash() -> None:
        raise RuntimeError("a loop that ended")

    async def run() -> None:
        metrics.JOB_CALLBACK_DISPATCHER_UP.set(1)
        task = asyncio.create_task(crash())
        task.add_done_callback(callbacks._report_dead_loop)
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)

    asyncio.run(run())
    assert _sample("ocr_job_callback_dispatcher_up") == 0
    metrics.JOB_CALLBACK_DISPATCHER_UP.set(1)


def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0
