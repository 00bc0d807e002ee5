"""Admission of synchronous requests BEFORE their body is read, so memory stays bounded.

The worker pool refuses work it has no slot for (429), but only once the document has been
read. Without a gate in front, a thousand clients uploading 25 MB each would all be buffered
first. `DocumentAdmission` lets at most as many `/v1/ocr` requests hold a document as the
pool has slots (workers + queue) and answers the rest 429 at once, so the service's memory is
bounded by `capacity x OCR_MAX_UPLOAD_BYTES` whatever the number of clients. The event loop
is single-threaded, so a plain counter is enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ocr_service.errors import Overloaded


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
