"""`JobChanges`: the in-process fan-out of "a job event was committed", so waiters wake instead of polling.

The store tells its `JobChanges` about every committed job event (SQLite directly after the
commit; PostgreSQL through `pg_notify` on `CHANNEL`, delivered to every replica's LISTEN
connection by `pglisten.ChangeListener`). Its waiters:

- an SSE stream `watch`es one job and re-reads `events_since` when that job changes;
- job workers register with `on_events(WORK_KINDS, ...)` and look for a page when one became
  claimable (`queued`, `retry`), wherever it was submitted or given back; the callback
  dispatcher registers for `FINAL_KINDS` the same way.

A notification is a hint, never the truth: waiters still poll, slowly while the feed is `live`
and at the old short intervals while it is not (`PollIntervals`). Whenever liveness flips (the
LISTEN connection dropped or came back), every waiter is woken, so nothing missed meanwhile
waits for a long poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

CHANNEL = "ocr_job_events"
"""The PostgreSQL NOTIFY channel every replica listens on."""
WORK_KINDS = frozenset({"queued", "retry"})
"""Event kinds after which a page is claimable: the ones that wake job workers."""
FINAL_KINDS = frozenset({"succeeded", "failed", "cancelled"})
"""Event kinds after which a completion callback may be due: the ones that wake the callback dispatcher."""


def encode(job_id: str, kind: str) -> str:
    """The NOTIFY payload: small (well under PostgreSQL's 8000-byte limit), just what a waiter needs."""
    return f"{kind}:{job_id}"


def decode(payload: str) -> tuple[str, str] | None:
    """(job_id, kind) from a payload, or None for one this version does not understand."""
    kind, sep, job_id = payload.partition(":")
    if not sep or not kind or not job_id:
        return None
    return job_id, kind


@dataclass(frozen=True)
class PollIntervals:
    """How long a waiter sleeps between looks at the store: `live` while notifications arrive, else `fallback`."""

    fallback: float
    live: float

    def now(self, changes: JobChanges) -> float:
        return self.live if changes.live else self.fallback


class JobWatch:
    """One waiter's view of one job: `wait` returns early when the job changed since the last `clear`."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.waiting = False

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        """Call before reading the store, so a change that commits during the read is not lost."""
        self._event.clear()

    async def wait(self, seconds: float) -> bool:
        """True when woken by a change, False when `seconds` passed first."""
        self.waiting = True
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the wake-up completes, and a stopping server would wait on this stream.
            async with asyncio.timeout(seconds):
                await self._event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self.waiting = False


class JobChanges:
    """Fan-out hub of one store (one per replica). Everything runs on the event loop; nothing blocks."""

    def __init__(self, *, live: bool) -> None:
        self._live = live
        self._watches: dict[str, set[JobWatch]] = {}
        self._listeners: list[tuple[frozenset[str], Callable[[], None]]] = []

    @property
    def live(self) -> bool:
        """Whether notifications arrive right now (SQLite: always; PostgreSQL: while LISTEN is connected)."""
        return self._live

    def set_live(self, live: bool) -> None:
        if live == self._live:
            return
        self._live = live
        self.wake_all()  # waiters re-read now and pick the interval that fits the new state

    def publish(self, job_id: str, kind: str) -> None:
        """A committed event of `job_id`: wake its streams, and whoever registered for `kind`."""
        for watch in self._watches.get(job_id, ()):
            watch.set()
        for kinds, callback in list(self._listeners):
            if kind in kinds:
                callback()

    def publish_payload(self, payload: str) -> None:
        decoded = decode(payload)
        if decoded is None:
            log.debug("ignoring job change notification %r", payload)
            return
        self.publish(*decoded)

    def wake_all(self) -> None:
        """Something may have been missed (a notification lost with its connection): everyone looks again."""
        for watches in self._watches.values():
            for watch in watches:
                watch.set()
        for _kinds, callback in list(self._listeners):
            callback()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[JobWatch]:
        """Be woken on `job_id`'s events while the block runs (registered before the first read)."""
        watch = JobWatch()
        self._watches.setdefault(job_id, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._watches.get(job_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[job_id]

    def waiting(self, job_id: str) -> int:
        """How many watchers of `job_id` are waiting for a change right now (for tests and debugging)."""
        return sum(1 for watch in self._watches.get(job_id, ()) if watch.waiting)

    def on_events(self, kinds: frozenset[str], callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after each event of `kinds` (and on `wake_all`); returns the function that unregisters it."""
        entry = (kinds, callback)
        self._listeners.append(entry)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(entry)

        return remove
