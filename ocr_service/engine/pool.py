"""The worker pool: N recognition threads, a bounded queue, immediate 429s and real time limits.

- Size: `settings.workers`, or when 0 the CPUs this process may use (`engine/cpus.py`, cgroup
  aware). Threads, not processes: the `capi` engine releases the GIL in every libtesseract call
  (tesserocr does in `Recognize` only), and each thread keeps its own warm recognizer
  (`EngineBackend.new_recognizer`, made lazily in the thread).
- Admission: a task holds a SLOT from submission until it finishes; there are
  `workers + queue_size` slots (`queue_size` 0 -> 4 per worker). `submit(wait_for_slot=False)`
  raises `Overloaded` at once when none is free, so memory never piles up behind busy workers;
  its Retry-After is how long the queue takes to drain at the recent mean page time.
  `wait_for_slot=True` is for the later pages of a document already admitted: they queue for a
  slot (in arrival order) instead of failing the request half-way.
- Deadlines: a task carries a `Deadline` (an absolute `time.monotonic()` limit plus a cancel
  switch, `ocr_service/deadline.py`). The engine gets the time left as its own limit (which
  really stops Tesseract or kills the CLI); a task still queued at its deadline, or whose caller
  gave up, is skipped without running; and the awaiting coroutine raises `RecognitionTimeout`
  at the deadline whatever the thread is doing. Whenever the caller stops waiting without a
  result (deadline passed, client gone, job cancelled, a sibling page failed) the pool cancels
  the task's `Deadline`: the work checks it between steps and the `capi` engine's monitor cuts
  the Recognize in progress short, so a 504 leaves no worker busy.
- The event loop never blocks: a worker hands the result to the caller's own asyncio future
  through `call_soon_threadsafe`, and slots go to waiters the same way.
- The hand-off costs the event loop as little as possible (it runs for every request): one
  asyncio future and one deadline timer per task, no `concurrent.futures.Future` wrapped in
  another future and a `wait_for` around that. A caller that stops waiting (deadline,
  cancellation, shutdown) marks its task abandoned, and a worker skips an abandoned task. A task
  abandoned before a worker took it gives its slot back at once (not when a worker reaches it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ocr_service.deadline import Deadline
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


@dataclass(eq=False)
class _Task(Generic[T]):
    """One submitted piece of work and the caller's future, which is settled on the caller's loop."""

    work: Callable[[Recognizer], T]
    context: contextvars.Context
    """The caller's context (its request id, for log lines the work writes) goes with the work."""
    deadline: float | None
    loop: asyncio.AbstractEventLoop | None
    done: asyncio.Future[T] | None
    """None for a task lent by another worker (`lend`): it reports through its own shared state."""
    abandoned: bool = False
    """Set once the caller stopped waiting; a worker that has not started the task skips it."""
    started: bool = False
    """Set (under the pool's lock) when a worker takes the task; until then giving it up frees its slot."""


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
        self,
        work: Callable[[Recognizer], T],
        *,
        deadline: Deadline | float | None = None,
        wait_for_slot: bool = False,
    ) -> T:
        """Run `work(recognizer)` on a worker thread; raise `Overloaded` or `RecognitionTimeout` as described above.

        `deadline` (a `Deadline`, or a bare monotonic time) is cancelled if this returns without a result.
        """
        stop = Deadline(deadline) if isinstance(deadline, float | int) else deadline
        at = None if stop is None else stop.at
        try:
            if not self._take_free_slot(wait_for_slot):
                await self._wait_for_slot(at)
        except BaseException:
            if stop is not None:
                stop.cancel()
            raise
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        task: _Task[T] = _Task(work, contextvars.copy_context(), at, loop, done)
        self._tasks.put(task)  # type: ignore[arg-type]
        timer = None if at is None else loop.call_later(max(0.0, at - time.monotonic()), self._expire, task)
        finished = False
        try:
            result = await done
            finished = True
            return result
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closed and current is not None and current.cancelling() == 0:
                # `close()` cancelled this queued page, not our caller: say why, as a 503.
                raise ServiceUnavailable("the service shut down before this page was recognised") from None
            raise
        finally:
            self._abandon(task)
            if timer is not None:
                timer.cancel()
            if not finished and stop is not None:
                stop.cancel()  # the work in its thread stops too (see the module docstring)

    def _abandon(self, task: _Task[Any]) -> None:
        """The caller stopped waiting. A task no worker has started gives its slot back NOW, not when
        a worker reaches it in the queue: a client that gave up (deadline, disconnect) and retries
        must find the slot free, or it sees a 429 although it has one request in flight (issue 15)."""
        with self._lock:
            if task.abandoned:
                return
            task.abandoned = True
            frees_slot = not task.started
        if frees_slot:
            self._release()

    def _expire(self, task: _Task[Any]) -> None:
        """The deadline timer: the caller stops waiting with a 504 (a queued task gives its slot back)."""
        self._abandon(task)
        if task.done is not None and not task.done.done():
            task.done.set_exception(RecognitionTimeout("recognition did not finish within the time limit"))

    def _start(self, task: _Task[Any]) -> bool:
        """A worker takes `task` (True), unless its caller gave it up first (its slot is already free)."""
        with self._lock:
            if task.abandoned:
                return False
            task.started = True
            self._busy += 1
            return True

    def idle_workers(self) -> int:
        """Workers with nothing to do right now: no page waits and fewer slots are held than workers."""
        with self._lock:
            if self._closed or self._waiters:
                return 0
            return max(0, self.workers - self._used)

    def lend(self, count: int, work: Callable[[Recognizer], object], deadline: float | None = None) -> int:
        """From a worker thread: run `work` on up to `count` idle workers; return how many took it.

        Each lent task holds a slot like any page, so admission and the queue see those workers
        as busy. Nothing waits here and no result comes back: `work` reports through state it
        shares with the lender (`page_parallel`), which never waits for a task that has not started.
        """
        with self._lock:
            if self._closed or self._waiters:
                return 0
            lent = max(0, min(count, self.workers - self._used))
            self._used += lent
        for _ in range(lent):
            self._tasks.put(_Task(work, contextvars.copy_context(), deadline, None, None))
        return lent

    def check_capacity(self) -> None:
        """Raise `Overloaded` now if no slot is free: lets callers refuse before doing any other work.

        Advisory (a slot may be taken before `submit`), which is fine: `submit` checks again.
        """
        with self._lock:
            full = self._used >= self.capacity or bool(self._waiters)
        if full:
            raise self.overloaded()

    def overloaded(self) -> Overloaded:
        """429 with Retry-After = about how long the current queue takes to drain (1-60 s)."""
        drain = self._mean_task_seconds * (self.queue_size + self.workers) / self.workers
        retry_after = max(1, min(60, math.ceil(drain)))
        return Overloaded(
            f"all {self.workers} workers are busy and {self.queue_size} pages are queued; retry in {retry_after} s",
            retry_after=retry_after,
        )

    def _take_free_slot(self, wait: bool) -> bool:
        """Take a slot if one is free (True); else raise `Overloaded`, or return False when `wait`."""
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the service is shutting down")
            if self._used < self.capacity and not self._waiters:
                self._used += 1
                return True
            if not wait:
                raise self.overloaded()
            return False

    async def _wait_for_slot(self, deadline: float | None) -> None:
        """Queue (in arrival order) until `_release` hands this caller a slot, or the deadline passes."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the service is shutting down")
            if self._used < self.capacity and not self._waiters:
                self._used += 1
                return
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
                if task.deadline is not None and time.monotonic() >= task.deadline:
                    self._abandon(task)  # frees the slot unless the caller already did
                    _settle(task, False, RecognitionTimeout("the time limit passed while the page was queued"))
                    continue
                if not self._start(task):
                    continue  # the caller gave up while it was queued and gave its slot back then
                started = time.monotonic()
                try:
                    if recognizer is None:
                        recognizer = self.backend.new_recognizer()
                    result = task.context.run(task.work, recognizer)
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
                _settle(task, *outcome)
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
        for task in drained:  # none of them started: cancel each caller's future on its own loop
            self._abandon(task)
            if task.loop is not None and task.done is not None:
                with contextlib.suppress(RuntimeError):  # that loop is closed; its caller is gone
                    task.loop.call_soon_threadsafe(task.done.cancel)
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join(join_timeout)
        self._threads.clear()


def _settle(task: _Task[Any], ok: bool, value: object) -> None:
    """From a worker thread: deliver the outcome to the caller's future on the caller's loop."""
    if task.loop is None or task.done is None:  # a lent task: its work reported already
        return
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        task.loop.call_soon_threadsafe(_deliver, task.done, ok, value)


def _deliver(done: asyncio.Future[Any], ok: bool, value: object) -> None:
    if done.done():  # the caller stopped waiting (deadline or cancellation) while the work ran
        return
    if ok:
        done.set_result(value)
    elif isinstance(value, StopIteration):  # an asyncio future refuses StopIteration itself
        done.set_exception(RuntimeError(f"the work raised {value!r}"))
    else:
        done.set_exception(value)  # type: ignore[arg-type]
