"""A small typed client for Catalyst OCR's HTTP API, synchronous (`Client`) and async (`AsyncClient`).

It depends only on httpx, never on the server's internals, so in-cluster callers can install it
alone. What it handles so callers do not have to: 429/503 and dropped connections retried
(honouring `Retry-After`, jittered back-off, a total time budget), an automatic
`Idempotency-Key` on every submission so a retried submit never creates two jobs, event streams
resumed with `Last-Event-ID` after a drop, problem+json turned into a typed exception, the API
key and base URL from the environment (`CATALYST_OCR_API_KEY`, `CATALYST_OCR_URL`), and
checking a completion callback's signature the way the service signs it.

The two clients share every rule (`catalyst_ocr.protocol`); only waiting and sending differ.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from catalyst_ocr.models import Event, EventParser, JobInfo, OcrResult
from catalyst_ocr.protocol import (
    STREAM_READ_TIMEOUT,
    Attempts,
    CatalystError,
    Document,
    OptionValue,
    Request,
    RetryBudgetExceeded,
    client_headers,
    decode_result,
    events_request,
    ocr_request,
    result_request,
    submit_request,
    verify_callback,
)

__all__ = [
    "AsyncClient",
    "AsyncJob",
    "CatalystError",
    "Client",
    "Event",
    "Job",
    "JobInfo",
    "OcrResult",
    "RetryBudgetExceeded",
    "verify_callback",
]


def _base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get("CATALYST_OCR_URL")
    if not url:
        raise ValueError("no base URL: pass base_url or set CATALYST_OCR_URL")
    return url.rstrip("/")


def _api_key(api_key: str | None) -> str | None:
    return api_key if api_key is not None else os.environ.get("CATALYST_OCR_API_KEY")


def _stream_timeout(timeout: float, deadline: float | None) -> httpx.Timeout:
    """Read time-out of an event stream: past the keep-alive interval, never past the caller's deadline."""
    read = STREAM_READ_TIMEOUT
    if deadline is not None:
        read = max(0.05, min(read, deadline - time.monotonic()))
    return httpx.Timeout(timeout, read=read)


def _check_deadline(job_id: str, deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(f"job {job_id} did not finish in time")


class Client:
    """A synchronous client. `base_url` and `api_key` default to `CATALYST_OCR_URL` / `CATALYST_OCR_API_KEY`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retry_budget: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.retry_budget = retry_budget
        self._http = httpx.Client(
            base_url=_base_url(base_url),
            headers=client_headers(_api_key(api_key)),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, request: Request) -> httpx.Response:
        """One request, retried on 429/503 and dropped connections until the budget is spent."""
        attempts = Attempts(self.retry_budget)
        while True:
            try:
                response = self._http.request(request.method, request.path, **request.kwargs())
            except httpx.TransportError as error:
                time.sleep(attempts.after_error(error))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return response
            time.sleep(delay)

    def ocr(self, document: Document, *, format: str = "json", **options: OptionValue) -> OcrResult | bytes:
        """Recognise a document synchronously: an `OcrResult` for JSON, the rendered bytes otherwise.

        `options` are the API's (`lang`, `pages`, `preprocess`, `psm`, `dpi`, ...); `lang` may be a list.
        """
        return decode_result(self.send(ocr_request(document, format, options)), format)

    def submit(
        self,
        document: Document,
        *,
        format: str = "json",
        idempotency_key: str | None = None,
        **options: OptionValue,
    ) -> Job:
        """Submit a job (`callback_url` is one of the options); retried safely under one Idempotency-Key."""
        response = self.send(submit_request(document, format, options, idempotency_key))
        return Job(self, JobInfo.from_json(response.json()))

    def job(self, job_id: str) -> Job:
        """A job submitted earlier, by id (from this process or another)."""
        return Job(self, self._job_info(job_id))

    def languages(self) -> Any:
        """The service's `/v1/languages` answer, as sent."""
        return self.send(Request("GET", "/v1/languages")).json()

    def _job_info(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(self.send(Request("GET", f"/v1/jobs/{job_id}")).json())

    def _events(self, job_id: str, last_event_id: int | None, deadline: float | None) -> Iterator[Event]:
        attempts = Attempts(self.retry_budget)
        while True:
            request = events_request(job_id, last_event_id)
            try:
                with self._http.stream(
                    "GET", request.path, headers=request.headers, timeout=_stream_timeout(self.timeout, deadline)
                ) as response:
                    if response.is_error:
                        response.read()
                    delay = attempts.after_response(response)
                    if delay is None:
                        parser = EventParser()
                        for line in response.iter_lines():
                            event = parser.feed(line)
                            if event is not None:
                                attempts.reset()
                                last_event_id = event.id
                                yield event
                                if event.final:
                                    return
                        delay = attempts.after_error(httpx.RemoteProtocolError("event stream ended early"))
            except httpx.ReadTimeout:
                _check_deadline(job_id, deadline)
                continue
            except httpx.TransportError as error:
                delay = attempts.after_error(error)
            time.sleep(delay)


class Job:
    """A submitted job. `info` is what the service last said about it."""

    def __init__(self, client: Client, info: JobInfo) -> None:
        self.client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    def refresh(self) -> JobInfo:
        self.info = self.client._job_info(self.id)
        return self.info

    def events(self, last_event_id: int | None = None) -> Iterator[Event]:
        """Progress events until the final one; a dropped stream resumes after the last event seen."""
        return self.client._events(self.id, last_event_id, None)

    def wait(self, timeout: float | None = None) -> JobInfo:
        """Block until the job is final (raises `TimeoutError` after `timeout` seconds); its final info."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.refresh().finished:
            for _ in self.client._events(self.id, None, deadline):
                _check_deadline(self.id, deadline)
        return self.refresh()

    def result(self, format: str = "json") -> OcrResult | bytes:
        """The merged result in any format (`409 job-not-finished` as a `CatalystError` until it succeeded)."""
        return decode_result(self.client.send(result_request(self.id, format)), format)

    def cancel(self) -> JobInfo:
        """Cancel a queued or running job (`409 job-already-finished` if it ended first)."""
        self.info = JobInfo.from_json(self.client.send(Request("DELETE", f"/v1/jobs/{self.id}")).json())
        return self.info


class AsyncClient:
    """The asyncio twin of `Client`: the same methods, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retry_budget: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.retry_budget = retry_budget
        self._http = httpx.AsyncClient(
            base_url=_base_url(base_url),
            headers=client_headers(_api_key(api_key)),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, request: Request) -> httpx.Response:
        attempts = Attempts(self.retry_budget)
        while True:
            try:
                response = await self._http.request(request.method, request.path, **request.kwargs())
            except httpx.TransportError as error:
                await asyncio.sleep(attempts.after_error(error))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return response
            await asyncio.sleep(delay)

    async def ocr(self, document: Document, *, format: str = "json", **options: OptionValue) -> OcrResult | bytes:
        return decode_result(await self.send(ocr_request(document, format, options)), format)

    async def submit(
        self,
        document: Document,
        *,
        format: str = "json",
        idempotency_key: str | None = None,
        **options: OptionValue,
    ) -> AsyncJob:
        response = await self.send(submit_request(document, format, options, idempotency_key))
        return AsyncJob(self, JobInfo.from_json(response.json()))

    async def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._job_info(job_id))

    async def languages(self) -> Any:
        return (await self.send(Request("GET", "/v1/languages"))).json()

    async def _job_info(self, job_id: str) -> JobInfo:
        return JobInfo.from_json((await self.send(Request("GET", f"/v1/jobs/{job_id}"))).json())

    async def _events(self, job_id: str, last_event_id: int | None, deadline: float | None) -> AsyncIterator[Event]:
        attempts = Attempts(self.retry_budget)
        while True:
            request = events_request(job_id, last_event_id)
            try:
                async with self._http.stream(
                    "GET", request.path, headers=request.headers, timeout=_stream_timeout(self.timeout, deadline)
                ) as response:
                    if response.is_error:
                        await response.aread()
                    delay = attempts.after_response(response)
                    if delay is None:
                        parser = EventParser()
                        async for line in response.aiter_lines():
                            event = parser.feed(line)
                            if event is not None:
                                attempts.reset()
                                last_event_id = event.id
                                yield event
                                if event.final:
                                    return
                        delay = attempts.after_error(httpx.RemoteProtocolError("event stream ended early"))
            except httpx.ReadTimeout:
                _check_deadline(job_id, deadline)
                continue
            except httpx.TransportError as error:
                delay = attempts.after_error(error)
            await asyncio.sleep(delay)


class AsyncJob:
    """The asyncio twin of `Job`."""

    def __init__(self, client: AsyncClient, info: JobInfo) -> None:
        self.client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    async def refresh(self) -> JobInfo:
        self.info = await self.client._job_info(self.id)
        return self.info

    def events(self, last_event_id: int | None = None) -> AsyncIterator[Event]:
        return self.client._events(self.id, last_event_id, None)

    async def wait(self, timeout: float | None = None) -> JobInfo:  # noqa: ASYNC109 (the same call as Job.wait)
        deadline = None if timeout is None else time.monotonic() + timeout
        if not (await self.refresh()).finished:
            async for _ in self.client._events(self.id, None, deadline):
                _check_deadline(self.id, deadline)
        return await self.refresh()

    async def result(self, format: str = "json") -> OcrResult | bytes:
        return decode_result(await self.client.send(result_request(self.id, format)), format)

    async def cancel(self) -> JobInfo:
        response = await self.client.send(Request("DELETE", f"/v1/jobs/{self.id}"))
        self.info = JobInfo.from_json(response.json())
        return self.info
