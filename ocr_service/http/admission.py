"""Admission of synchronous requests BEFORE their body is read, so memory stays bounded.

The worker pool refuses work it has no slot for (429), but only once the document has been
read. Without a gate in front, a thousand clients uploading 25 MB each would all be buffered
first. `DocumentAdmission` lets at most as many `/v1/ocr` requests hold a document as the
pool has slots (workers + queue) and answers the rest 429 at once, so the service's memory is
bounded by `capacity x OCR_MAX_UPLOAD_BYTES` whatever the number of clients. `POST /v1/jobs`
has a gate of its own of the same size (a submission holds its document until it is stored), so
the two together hold at most twice that. The event loop is single-threaded, so a plain counter
is enough.

A slot is held for as long as the request's WORK lasts, not its answer: the endpoint leaves the
gate as soon as recognition is done (the cache write and the response come after), and a client
that disconnects while its page waits or runs stops that work (`while_connected`), so its slot
is free before it can retry. A client that keeps at most `capacity` requests in flight, and waits
for each answer, therefore never sees a 429 (issue 15's "phantom 429s").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from starlette.requests import Request

from ocr_service.errors import OcrError, Overloaded

T = TypeVar("T")


class ClientClosedRequest(OcrError):
    """The client disconnected before its answer was ready; the work was stopped (nobody reads the answer)."""

    status, slug, title = 499, "client-closed-request", "The client closed the connection"


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first (its body must be fully read).

    Once the body is read, the only message the server can still deliver is `http.disconnect`,
    so one pending `receive()` watches the connection at no cost while the work runs.
    """
    working = asyncio.ensure_future(work)
    watching = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((working, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        if not working.done():
            working.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await working
    if working.cancelled():
        raise ClientClosedRequest("The client disconnected before the recognition finished; it was stopped.")
    return working.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def uploads_refused(limit: int) -> Overloaded:
    """The 429 of a gate that only bounds uploads in memory (jobs): they drain in about a second."""
    return Overloaded(f"{limit} uploads are already being received; retry in 1 s", retry_after=1)


class DocumentAdmission:
    """Counts requests holding a document; `limit()` is read on each admission (the pool may resize),
    and a refusal is the pool's own `Overloaded` (`refusal()`), so clients get one Retry-After policy."""

    def __init__(self, limit: Callable[[], int], refusal: Callable[[], Overloaded]) -> None:
        self._limit = limit
        self._refusal = refusal
        self.active = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        limit = max(1, self._limit())
        if self.active >= limit:
            raise self._refusal()  # the pool's own 429: one Retry-After policy for both gates
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
