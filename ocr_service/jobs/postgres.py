"""The PostgreSQL database behind `SqlJobStore` (asyncpg): the multi-replica source of truth.

The pool starts empty, so a replica boots while PostgreSQL is down (sync OCR keeps working)
and connects, migrates and serves jobs as soon as it comes back. Connection failures surface
as `StoreUnavailable` (503 on the jobs API), never as a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ocr_service.jobs.changes import CHANNEL, JobChanges, encode
from ocr_service.jobs.errors import StoreUnavailable
from ocr_service.jobs.pglisten import ChangeListener, discard_connection
from ocr_service.jobs.schema import POSTGRES_MIGRATIONS
from ocr_service.jobs.sqlstore import Row, Transaction

log = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 0x0C47A1_0CE  # pg_advisory_lock key shared by every replica's migration step
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a connection whose session the server terminated mid-operation
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
)


def translate(sql: str) -> str:
    """The shared SQL's tokens in PostgreSQL's words."""
    sql = re.sub(r"SECONDS\((\$\d+)\)", r"make_interval(secs => \1::float8)", sql)
    return (
        sql.replace("{now}", "now()")
        .replace("{for_update}", "FOR UPDATE")
        .replace("{skip_locked}", "FOR UPDATE SKIP LOCKED")
    )


class _PgTransaction(Transaction):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._conn.fetch(translate(sql), *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._conn.fetchrow(translate(sql), *args)
        return row

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(translate(sql), *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        if args:
            await self._conn.executemany(translate(sql), args)

    async def notify(self, job_id: str, kind: str) -> None:
        # Transactional: PostgreSQL queues the notification and delivers it at COMMIT (never on rollback).
        await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, encode(job_id, kind))


class PostgresDatabase:
    """A lazily connected asyncpg pool that applies migrations on first successful contact.

    Connections are held only for one short transaction each (workers, housekeeping, callbacks,
    API requests and SSE reads all share the pool), so a modest pool serves many clients. Beside
    the pool, a `ChangeListener` holds one LISTEN connection that feeds `changes`; it runs from
    `open()` to `close()`, reconnecting by itself.
    """

    backend = "postgresql"

    def __init__(self, url: str, max_connections: int = 20, connect_timeout: float = 5.0) -> None:
        self._url = url
        self._max = max_connections
        self._timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._migrated = False
        self._migrate_lock: asyncio.Lock | None = None
        self.changes = JobChanges(live=False)
        self.listener = ChangeListener(url, self.changes, connect_timeout=connect_timeout)

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._url, min_size=0, max_size=self._max, timeout=self._timeout, command_timeout=60
        )
        self.listener.start()
        try:
            await self._ensure_schema()
        except StoreUnavailable as exc:
            log.warning("PostgreSQL unavailable at start-up; jobs answer 503 until it is back: %s", exc.detail)

    async def close(self) -> None:
        await self.listener.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _ensure_schema(self) -> None:
        if self._migrated:
            return
        if self._migrate_lock is None:
            self._migrate_lock = asyncio.Lock()
        async with self._migrate_lock:
            if self._migrated:
                return
            async with self._connection() as conn:
                await migrate(conn)
            self._migrated = True

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreUnavailable("The job store is not open.")
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                try:
                    yield conn
                except _UNAVAILABLE:
                    discard_connection(conn)
                    raise
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL is unreachable ({type(exc).__name__}); retry shortly.") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction on a pooled connection; one that failed or was cancelled is closed, never reused.

        A session the server terminated (restart, failover) can leave asyncpg's protocol
        mid-operation, and handing that connection out again fails with InternalClientError; a
        task cancelled during BEGIN, a statement or COMMIT leaves its session inside a transaction.
        So every unavailability error and every cancellation closes the connection before it goes
        back to the pool (the server rolls back what was open).
        """
        await self._ensure_schema()
        if self._pool is None:
            raise StoreUnavailable("The job store is not open.")
        conn: asyncpg.Connection | None = None
        try:
            conn = await self._pool.acquire(timeout=self._timeout)
            transaction = conn.transaction()
            await transaction.start()
            try:
                yield _PgTransaction(conn)
            except (asyncio.CancelledError, *_UNAVAILABLE):
                raise  # nothing to roll back on a lost session, no time to on a cancelled one: discarded below
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()
        except asyncio.CancelledError:
            if conn is not None:
                # Cancelled during BEGIN, a statement, COMMIT or ROLLBACK: the session may be inside a
                # transaction or mid-protocol; the server rolls back when it closes. Never reuse it.
                discard_connection(conn)
            raise
        except _UNAVAILABLE as exc:
            if conn is not None:
                discard_connection(conn)
            raise StoreUnavailable(f"PostgreSQL is unreachable ({type(exc).__name__}); retry shortly.") from exc
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await self._pool.release(conn)

    def timestamp(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply missing migrations under an advisory lock; return the versions this call applied."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ocr_schema_migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM ocr_schema_migrations")}
        for version, sql in POSTGRES_MIGRATIONS:
            if version in applied:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO ocr_schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
            log.info("applied job store migration %d", version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now
