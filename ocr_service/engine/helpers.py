"""`HelperPool`: the bounded threads for the blocking steps around recognition, never asyncio's default executor.

Opening a multi-page document (sniff, count and size its frames), merging the rendered pages of
a long document, hashing a large upload and inspecting a job's document all block for
milliseconds to seconds, so they leave the event loop. `asyncio.to_thread` would put them on the
loop's default executor: unbounded in queue, shared with everything else in the process, and
blind to deadlines, so six many-frame GIFs once starved an unrelated one-page request for 101 s.

Here instead:
- `threads` threads (`OCR_HELPER_THREADS`, 0 = as many as the engine has workers, at least 2)
  and at most `queue_size` calls waiting for one (`OCR_HELPER_QUEUE_SIZE`, 0 = as many as the
  engine pool has slots, so what the pool admitted is never refused here). A call past that is
  `Overloaded` (429 with Retry-After) at once, never a hang; a slot is held until the call has
  really ended in its thread, so abandoned calls still count.
- A call made with the request's `Deadline` is waited for until that deadline only: past it the
  caller gets `RecognitionTimeout` (504) and the deadline is cancelled, which the call itself
  checks between frames (see `documents.py`), so its thread is soon free again.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ocr_service.deadline import Deadline
from ocr_service.errors import Overloaded, RecognitionTimeout, ServiceUnavailable

T = TypeVar("T")


class HelperPool:
    """See the module docstring. `await run(fn, *args, deadline=...)`, then `close()`."""

    def __init__(self, threads: int, queue_size: int, *, name: str = "ocr-helper") -> None:
        if threads < 1 or queue_size < 0:
            raise ValueError("a helper pool needs at least one thread and a non-negative queue")
        self.threads = threads
        self.queue_size = queue_size
        self.capacity = threads + queue_size
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._used = 0
        self._closed = False

    @property
    def in_use(self) -> int:
        """Calls running or waiting for a thread right now."""
        return self._used

    async def run(self, fn: Callable[..., T], *args: object, deadline: Deadline | None = None) -> T:
        """`fn(*args)` on a helper thread (in the caller's context); see the module docstring for the limits."""
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the service is shutting down")
            if self._used >= self.capacity:
                raise Overloaded(
                    f"all {self.threads} helper threads are busy and {self.queue_size} calls are waiting; retry in 1 s",
                    retry_after=1,
                )
            self._used += 1
        context = contextvars.copy_context()
        try:
            future: Future[T] = self._executor.submit(functools.partial(context.run, fn, *args))
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        waiting = asyncio.wrap_future(future)
        if deadline is None:
            return await waiting
        try:
            async with asyncio.timeout(max(0.0, deadline.remaining())):
                return await asyncio.shield(waiting)
        except TimeoutError:
            deadline.cancel()
            future.cancel()  # not started yet: it never will be
            waiting.add_done_callback(_consume)
            raise RecognitionTimeout("the time limit passed while the document was being opened") from None
        except asyncio.CancelledError:
            deadline.cancel()
            future.cancel()
            waiting.add_done_callback(_consume)
            raise

    def _release(self, _future: Future[T] | None) -> None:
        with self._lock:
            self._used -= 1

    def close(self) -> None:
        """Refuse new calls; calls not started are dropped, running ones finish in their threads."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)


def _consume(waiting: asyncio.Future[Any]) -> None:
    """Nobody awaits an abandoned call any more: retrieve its outcome so asyncio does not log it as lost."""
    if not waiting.cancelled():
        waiting.exception()
