"""`ChangeListener`: one dedicated PostgreSQL LISTEN connection per replica, feeding its `JobChanges`.

The job store sends `pg_notify(CHANNEL, '<kind>:<job id>')` inside the transaction that writes a
job event, so PostgreSQL delivers it only if and when that transaction commits, to every
replica's listener (the writing replica's too). The listener owns its own asyncpg connection,
not a pooled one: a pooled connection goes back to the pool after each transaction, while
LISTEN belongs to one session for as long as it lives.

The feed counts as live only once a notification the listener sends itself has come back (at
connect, and every `health_check_seconds`): behind a pooler in transaction mode (PgBouncer)
LISTEN is accepted but nothing is ever delivered, and such a feed must not pass for working.

When PostgreSQL goes away the connection dies (asyncpg's termination callback, or a failed
health check on a silent link); the feed turns not-live, so every waiter falls back to
fast polling, and the listener reconnects with capped, jittered exponential back-off. Being
disconnected is logged and counted but never fails readiness: polling still finds everything,
only later. `stop()` cancels the loop and terminates the connection without waiting on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid

import asyncpg

from ocr_service import metrics
from ocr_service.jobs.changes import CHANNEL, JobChanges

log = logging.getLogger(__name__)

PING_KIND = "ping"
"""Payload kind of the listener's own round-trip checks (`JobChanges` ignores it: no job has that id)."""

_CONNECT_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,  # e.g. "the database system is starting up" while PostgreSQL restarts
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def discard_connection(conn: asyncpg.Connection) -> None:
    """Close a connection whose session failed or was interrupted, without waiting on the network.

    A session the server terminated (restart, failover, admin shutdown) can leave asyncpg's
    protocol mid-operation, and reusing it fails with InternalClientError. asyncpg may also have
    detached the lost connection from its pool proxy already, and then `terminate()` raises
    InterfaceError: there is nothing left to close, and that must not turn a 503 into a 500.
    """
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


class NotificationsNotDelivered(Exception):
    """The session LISTENs, yet its own test notification did not come back."""


class ChangeListener:
    """Keeps LISTEN `CHANNEL` alive on `url` and forwards notifications to `changes`."""

    def __init__(
        self,
        url: str,
        changes: JobChanges,
        *,
        connect_timeout: float = 5.0,
        min_backoff: float = 0.5,
        max_backoff: float = 5.0,
        health_check_seconds: float = 15.0,
    ) -> None:
        self._url = url
        self.changes = changes
        self._timeout = connect_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._health_check_seconds = health_check_seconds
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._ping_payload = ""
        self._pong = asyncio.Event()
        self.reconnects = 0
        self.failed_connects = 0
        self.round_trips = 0
        """Counted for tests and debugging: connect attempts that failed, notifications that came back."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="job-change-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop_connection()

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._ping_payload:
            self._pong.set()
            return
        self.changes.publish_payload(payload)

    async def _delivers(self, conn: asyncpg.Connection) -> bool:
        """NOTIFY ourselves and wait for it to arrive: the only proof that notifications reach us."""
        self._ping_payload = f"{PING_KIND}:{uuid.uuid4().hex}"
        self._pong.clear()
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self._ping_payload, timeout=self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                await self._pong.wait()
        except TimeoutError:
            return False
        self.round_trips += 1
        return True

    async def _connect(self) -> tuple[asyncpg.Connection, asyncio.Event]:
        conn = await asyncpg.connect(self._url, timeout=self._timeout)
        self._connection = conn
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, self._on_notification)
        if not await self._delivers(conn):
            raise NotificationsNotDelivered(
                "LISTEN was accepted but a test notification never arrived (a pooler in transaction mode?)"
            )
        return conn, lost

    async def _run(self) -> None:
        delay = self._min_backoff
        ever_connected = False
        warned = False
        while True:
            try:
                conn, lost = await self._connect()
            except Exception as exc:  # whatever it is, the loop must survive it: the feed is an optimisation
                self._drop_connection()
                self.failed_connects += 1
                if not warned:
                    log.warning(
                        "job change feed cannot LISTEN on PostgreSQL (%s: %s); polling the job store until it can",
                        type(exc).__name__,
                        exc,
                        exc_info=not isinstance(exc, (*_CONNECT_ERRORS, NotificationsNotDelivered)),
                    )
                    warned = True
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._max_backoff)
                continue
            if ever_connected:
                self.reconnects += 1
                metrics.JOB_CHANGE_FEED_RECONNECTS.inc()
                log.info("job change feed reconnected to PostgreSQL")
            ever_connected, warned, delay = True, False, self._min_backoff
            metrics.JOB_CHANGE_FEED_CONNECTED.inc()  # inc/dec: stays right with several stores in one process
            self.changes.set_live(True)  # also wakes every waiter: catch up on what was missed while down
            try:
                await self._until_lost(conn, lost)
            finally:
                self.changes.set_live(False)
                metrics.JOB_CHANGE_FEED_CONNECTED.dec()
                self._drop_connection()
            log.warning("job change feed lost its PostgreSQL connection; polling the job store until it is back")
            warned = True

    async def _until_lost(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return once the connection is gone; a periodic round trip catches a link that died silently."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_check_seconds):
                    await lost.wait()
            if lost.is_set() or conn.is_closed():
                return
            try:
                if not await self._delivers(conn):
                    log.warning("job change feed stopped receiving notifications; reconnecting")
                    return
            except Exception:  # any failure of the one query it runs means the session is not usable
                return

    def _drop_connection(self) -> None:
        conn, self._connection = self._connection, None
        if conn is not None and not conn.is_closed():
            discard_connection(conn)
