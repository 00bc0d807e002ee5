"""Fixtures for the jobs tests: a real PostgreSQL and Redis per xdist worker, started from the
Debian binaries on loopback in temp dirs, and a job store of each kind.

The servers are session-scoped (one per worker, shut down at the end); each test gets its
own PostgreSQL database and SQLite file, so tests never see each other's jobs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from jobs_servers import PostgresServer, RedisServer
from jobs_support import SECRET, Receiver

from ocr_service.jobs.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from ocr_service.jobs.postgres import PostgresDatabase
from ocr_service.jobs.sqlite import SqliteDatabase
from ocr_service.jobs.sqlstore import SqlJobStore


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL this test may stop and start without disturbing the session's server."""
    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis this test may stop and start without disturbing other tests."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlJobStore]:
    """A job store of each kind, opened (migrated) and empty."""
    if request.param == "sqlite":
        job_store = SqlJobStore(SqliteDatabase(tmp_path / "jobs.sqlite3"))
    else:
        url = request.getfixturevalue("postgres_url")
        job_store = SqlJobStore(PostgresDatabase(url))
    await job_store.open()
    yield job_store
    await job_store.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback HTTP server receiving callbacks; it verifies each signature with `SECRET`."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signature_ok = verify(SECRET, self.headers[TIMESTAMP_HEADER], body, self.headers[SIGNATURE_HEADER])
            state.deliveries.append({"body": json.loads(body), "signature_ok": signature_ok})
            failing = len(state.deliveries) <= state.failures
            self.send_response(500 if failing else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
