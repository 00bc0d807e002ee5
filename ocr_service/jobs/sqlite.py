"""The embedded SQLite database behind `SqlJobStore`: the default when no `OCR_DATABASE_URL` is set.

One connection in WAL mode, used from one dedicated thread, so the event loop never blocks
on disk. Transactions start with `BEGIN IMMEDIATE` (the write lock), which gives one node the
same semantics PostgreSQL's row locks give many: a page is claimed once, a job finishes once.
Everything accepted is on disk before the submission is answered, so it survives a restart.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from ocr_service.jobs.changes import JobChanges
from ocr_service.jobs.errors import StoreUnavailable
from ocr_service.jobs.schema import SQLITE_MIGRATIONS
from ocr_service.jobs.sqlstore import Row, Transaction

T = TypeVar("T")

_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


@lru_cache(maxsize=256)
def translate(sql: str) -> str:
    """The shared SQL's tokens in SQLite's words (`$n` becomes `?n`)."""
    sql = re.sub(r"SECONDS\(\$(\d+)\)", r"(?\1)", sql)
    sql = re.sub(r"\$(\d+)", r"?\1", sql)
    return sql.replace("{now}", _NOW).replace("{for_update}", "").replace("{skip_locked}", "")


class _SqliteTransaction(Transaction):
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self.announcements: list[tuple[str, str]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        def run(conn: sqlite3.Connection) -> list[Row]:
            return [dict(r) for r in conn.execute(translate(sql), args).fetchall()]

        return await self._db.call(run)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        await self._db.call(lambda conn: conn.execute(translate(sql), args))

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        await self._db.call(lambda conn: conn.executemany(translate(sql), args))

    async def notify(self, job_id: str, kind: str) -> None:
        self.announcements.append((job_id, kind))  # published by `transaction()` after COMMIT


class SqliteDatabase:
    """`path` is the database file; its directory is created if missing.

    One process owns the file, so the change feed is in-process: events are published to
    `changes` right after their transaction commits, and it is always live.
    """

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.changes = JobChanges(live=True)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock: asyncio.Lock | None = None

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None or self._executor is None:
            raise StoreUnavailable("The job store is not open.")
        conn = self._conn
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "disk" in str(exc) or "unable to open" in str(exc):
                raise StoreUnavailable(f"The SQLite job store is unavailable: {exc}") from exc
            raise

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-jobs")

        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            _migrate(conn)
            return conn

        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        except (OSError, sqlite3.Error) as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise StoreUnavailable(
                f"cannot open the SQLite job store at {self.path}: {exc}; point OCR_DATA_DIR at a writable "
                "directory, or set OCR_DATABASE_URL"
            ) from exc

    async def close(self) -> None:
        if self._conn is not None and self._executor is not None:
            conn = self._conn
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
            self._executor.shutdown(wait=True)
        self._conn = None
        self._executor = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # A cancelled task still has its statement run by the thread (already submitted), so the
            # rollback covers BEGIN too, and it runs only if a transaction is really open. The one
            # thread runs statements in submission order: the rollback precedes any later BEGIN.
            try:
                await self.call(lambda conn: conn.execute("BEGIN IMMEDIATE"))
                tx = _SqliteTransaction(self)
                yield tx
            except BaseException:
                await self.call(_rollback_if_open)
                raise
            await self.call(lambda conn: conn.execute("COMMIT"))
        for job_id, kind in tx.announcements:
            self.changes.publish(job_id, kind)

    def timestamp(self, value: Any) -> datetime:
        return datetime.fromtimestamp(float(value), UTC)


def _rollback_if_open(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply missing migrations inside one write transaction (other processes wait on the lock).

    Foreign keys are off meanwhile (SQLite ignores the pragma inside a transaction, so it is set
    around it): a migration that rebuilds a parent table drops the old one, which with foreign
    keys on would cascade-delete every child row. `foreign_key_check` before the commit makes
    sure the rebuilt tables still satisfy every reference.
    """
    applied_now: list[int] = []
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS ocr_schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            applied = {r[0] for r in conn.execute("SELECT version FROM ocr_schema_migrations")}
            for version, sql in SQLITE_MIGRATIONS:
                if version in applied:
                    continue
                for statement in (s.strip() for s in sql.split(";")):
                    if statement:
                        conn.execute(statement)
                conn.execute(translate("INSERT INTO ocr_schema_migrations VALUES ($1, {now})"), (version,))
                applied_now.append(version)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise sqlite3.IntegrityError(f"job store migration left dangling references: {broken[:5]}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    return applied_now
