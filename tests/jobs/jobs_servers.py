"""Real PostgreSQL and Redis servers for the jobs tests, started from the Debian binaries.

Each server lives in its own temp dir on loopback, can be stopped and started again (the
restart tests need that) and is torn down by its owner. PostgreSQL refuses to run as root,
so as root it runs as the `postgres` user (its temp dir is chowned to it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from suite_support import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class PostgresServer:
    """One throw-away PostgreSQL cluster: `start()`, `stop()`, `url(dbname)`, `create_database()`."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN} (scripts/install-system-deps.sh --dev)")
        self.root = Path(tempfile.mkdtemp(prefix="catalyst-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.sockets.mkdir()
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "-N")
        self._databases = 0

    def _run(self, *argv: str) -> None:
        result = subprocess.run([*self._as_user, *argv], capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stdout}\n{result.stderr}")

    def start(self) -> None:
        for _ in range(5):
            options = (
                f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB"
            )
            pg_ctl = str(PG_BIN / "pg_ctl")
            try:
                self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
                break
            except RuntimeError:
                self.port = free_port()  # someone took the port between picking and binding
        else:
            raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'log').read_text(errors='replace')[-2000:]}")
        _wait_port(self.port, 30)

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(RuntimeError):
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A fresh, empty database (one per test keeps tests independent on one server)."""
        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}_{int(time.time() * 1000) % 100000}"
        psql = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        self._run(*psql, "-qc", f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """One throw-away Redis without persistence: `start()`, `stop()`, `url`."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found (scripts/install-system-deps.sh --dev)")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="catalyst-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.root), "--daemonize", "no", "--loglevel", "warning"]
        log = (self.root / "log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_port(self.port, 15)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
