"""The worker pool: N recognition threads, a bounded queue, immediate 429s and real time limits.

- Size: `settings.workers`, or when 0 the CPUs this process may use (`engine/cpus.py`, cgroup
  aware). Threads, not processes: tesserocr releases the GIL while Tesseract works, and each
  thread keeps its own warm recognizer (`EngineBackend.new_recognizer`, made lazily in the thread).
- Admission: a task holds a SLOT from submission until it finishes; there are
  `workers + queue_size` slots (`queue_size` 0 -> 4 per worker). `submit(wait_for_slot=False)`
  raises `Overloaded` at once when none is free, so memory never piles up behind busy workers;
  its Retry-After is how long the queue takes to drain at the recent mean page time.
  `wait_for_slot=True` is for the later pages of a document already admitted: they queue for a
  slot (in arrival order) instead of failing the request half-way.
- Deadlines: a task carries an absolute `time.monotonic()` deadline. The engine gets the time
  left as its own limit (which really stops Tesseract or kills the CLI); a task still queued at
  its deadline, or whose caller gave up, is skipped without running; and the awaiting coroutine
  raises `RecognitionTimeout` at the deadline whatever the thread is doing.
- The event loop never blocks: results come back through `asyncio.wrap_future`, slots handed to
  waiters through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ocr_service.engine.base import EngineBackend, Recognizer
from ocr_service.errors import Overloaded, RecognitionTimeout, ServiceUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

QUEUE_PER_WORKER = 4


@dataclass(frozen=True)
class PoolStats:
    """A snapshot for metrics and readiness.

    `busy`: pages being recognised; `queued`: pages admitted but waiting for a worker;
    `queue_capacity`: how many may wait; `capacity`: workers + queue_capacity (all slots).
    """

    workers: int
    busy: int
    queued: int
    queue_capacity: int
    capacity: int


@dataclass
class _Task(Generic[T]):
    work: Callable[[Recognizer], T]
    deadline: float | None
    future: concurrent.futures.Future[T]


class WorkerPool:
    """See the module docstring. Create, `start()`, `await submit(...)`, `close()`."""

    def __init__(
        self,
        backend: EngineBackend,
        workers: int,
        queue_size: int = 0,
        *,
        name: str = "ocr-worker",
        warm: Callable[[Recognizer], object] | None = None,
    ) -> None:
        """`warm(recognizer)` runs once in each thread as it starts (e.g. to load the default model)."""
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.backend = backend
        self._warm = warm
        self.workers = workers
        self.queue_size = queue_size or QUEUE_PER_WORKER * workers
        self.capacity = workers + self.queue_size
        self._name = name
        self._lock = threading.Lock()
        self._tasks: queue.SimpleQueue[_Task[object] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._used = 0
        self._busy = 0
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = collections.deque()
        self._closed = False
        self._idle = threading.Condition(self._lock)
        self._mean_task_seconds = 0.0  # moving average of recent tasks, for Retry-After

    @property
    def stats(self) -> PoolStats:
        with self._lock:
            queued = self._used - self._busy + len(self._waiters)
            return PoolStats(self.workers, self._busy, queued, self.queue_size, self.capacity)

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._worker, name=f"{self._name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def submit(
        self, work: Callable[[Recognizer], T], *, deadline: float | None = None, wait_for_slot: bool = False
    ) -> T:
        """Run `work(recognizer)` on a worker thread; raise `Overloaded` or `RecognitionTimeout` as described above."""
        await self._acquire_slot(deadline, wait_for_slot)
        # The caller's context (its request id, for log lines the work writes) goes with the work.
        context = contextvars.copy_context()

        def in_context(recognizer: Recognizer) -> T:
            return context.run(work, recognizer)

        task: _Task[T] = _Task(in_context, deadline, concurrent.futures.Future())
        self._tasks.put(task)  # type: ignore[arg-type]
        waiting = asyncio.wrap_future(task.future)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return await asyncio.wait_for(waiting, remaining)
        except TimeoutError:
            raise RecognitionTimeout("recognition did not finish within the time limit") from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closed and current is not None and current.cancelling() == 0:
                # `close()` cancelled this queued page, not our caller: say why, as a 503.
                raise ServiceUnavailable("the service shut down before this page was recognised") from None
            raise

    def check_capacity(self) -> None:
        """Raise `Overloaded` now if no slot is free: lets callers refuse before doing any other work.

        Advisory (a slot may be taken before `submit`), which is fine: `submit` checks again.
        """
        with self._lock:
            full = self._used >= self.capacity or bool(self._waiters)
        if full:
            raise self._overloaded()

    def _overloaded(self) -> Overloaded:
        """429 with Retry-After = about how long the current queue takes to drain (1-60 s)."""
        drain = self._mean_task_seconds * (self.queue_size + self.workers) / self.workers
        retry_after = max(1, min(60, math.ceil(drain)))
        return Overloaded(
            f"all {self.workers} workers are busy and {self.queue_size} pages are queued; retry in {retry_after} s",
            retry_after=retry_after,
        )

    async def _acquire_slot(self, deadline: float | None, wait: bool) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the service is shutting down")
            if self._used < self.capacity and not self._waiters:
                self._used += 1
                return
            if not wait:
                raise self._overloaded()
            granted: asyncio.Future[None] = loop.create_future()
            entry = (loop, granted)
            self._waiters.append(entry)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait_for(asyncio.shield(granted), remaining)
        except BaseException as failure:
            with self._lock:
                try:
                    self._waiters.remove(entry)
                    queued_still = True
                except ValueError:
                    queued_still = False
            if not queued_still:
                # The slot was (or is being) handed to us: give it back exactly once.
                if granted.done() and not granted.cancelled():
                    self._release()
                else:
                    granted.cancel()
            if isinstance(failure, TimeoutError):
                raise RecognitionTimeout("the time limit passed while waiting for a free worker") from None
            raise

    def _release(self) -> None:
        """Free one slot, or hand it straight to the oldest coroutine waiting for one."""
        with self._lock:
            while self._waiters:
                loop, granted = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._grant, granted)
                    return
                except RuntimeError:  # that loop is closed; its waiter is gone
                    continue
            self._used -= 1
            self._idle.notify_all()

    def _grant(self, granted: asyncio.Future[None]) -> None:
        if granted.done():  # the waiter gave up after being chosen: pass the slot on
            self._release()
        else:
            granted.set_result(None)

    def _worker(self) -> None:
        recognizer: Recognizer | None = None
        try:
            if self._warm is not None:
                try:
                    recognizer = self.backend.new_recognizer()
                    self._warm(recognizer)
                except Exception:
                    log.exception("warming a worker failed; its first page will load the model instead")
            while True:
                task = self._tasks.get()
                if task is None:
                    return
                if not task.future.set_running_or_notify_cancel():
                    self._release()  # the caller gave up while it was queued
                    continue
                if task.deadline is not None and time.monotonic() >= task.deadline:
                    self._release()
                    task.future.set_exception(RecognitionTimeout("the time limit passed while the page was queued"))
                    continue
                with self._lock:
                    self._busy += 1
                started = time.monotonic()
                try:
                    if recognizer is None:
                        recognizer = self.backend.new_recognizer()
                    result = task.work(recognizer)
                except BaseException as exc:
                    outcome: tuple[bool, object] = (False, exc)
                else:
                    outcome = (True, result)
                duration = time.monotonic() - started
                with self._lock:
                    self._busy -= 1
                    mean = self._mean_task_seconds
                    self._mean_task_seconds = duration if mean == 0 else 0.8 * mean + 0.2 * duration
                self._release()
                if outcome[0]:
                    task.future.set_result(outcome[1])
                else:
                    task.future.set_exception(outcome[1])  # type: ignore[arg-type]
        finally:
            if recognizer is not None:
                try:
                    recognizer.close()
                except Exception:
                    log.exception("closing a recognizer failed")

    def wait_idle(self, timeout: float | None) -> bool:
        """Block until no task holds a slot (or `timeout` passes); True when idle."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._used > 0:
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def close(self, grace_seconds: float = 0, *, join_timeout: float = 5.0) -> None:
        """Refuse new work, let admitted work finish for `grace_seconds`, then stop the threads."""
        with self._lock:
            self._closed = True
        if grace_seconds > 0:
            self.wait_idle(grace_seconds)
        # Queued tasks not yet started are cancelled; workers exit at their sentinel.
        drained: list[_Task[object]] = []
        while True:
            try:
                item = self._tasks.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                drained.append(item)
        for task in drained:
            if task.future.cancel():
                self._release()
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join(join_timeout)
        self._threads.clear()
