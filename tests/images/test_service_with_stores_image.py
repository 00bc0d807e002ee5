"""The service image against the real PostgreSQL (jobs) and Redis (result cache) the suite starts:
a job goes through to the right text, and the same document again is a cache hit from Redis."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from images_support import SERVICE_IMAGE, running
from jobs.jobs_servers import PostgresServer, RedisServer
from rapidfuzz.distance import Levenshtein
from suite_support import free_port

from ocr_service.contract import EnvVar

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def stores() -> Iterator[tuple[PostgresServer, RedisServer]]:
    postgres, redis = PostgresServer(), RedisServer()
    postgres.start()
    redis.start()
    try:
        yield postgres, redis
    finally:
        postgres.close()
        redis.close()


def redis_keys(redis: RedisServer) -> int:
    """How many keys Redis holds, asked over its own protocol (no client library needed)."""
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
        sock.sendall(b"DBSIZE\r\n")
        reply = sock.recv(64)
    assert reply.startswith(b":"), reply
    return int(reply[1:].strip())


def test_the_service_image_runs_a_job_on_postgresql_and_caches_in_redis(
    stores: tuple[PostgresServer, RedisServer], corpus_dir: Path
) -> None:
    postgres, redis = stores
    port = free_port()
    env = {
        str(EnvVar.DATABASE_URL): postgres.create_database(),
        str(EnvVar.REDIS_URL): redis.url,
        str(EnvVar.HOST): "127.0.0.1",
        str(EnvVar.PORT): str(port),
        str(EnvVar.WORKERS): "1",
    }
    flags = ["--network", "host", "--health-interval", "2s", "--health-start-period", "60s"]
    scan = corpus_dir / "phototest.tif"
    truth = " ".join((corpus_dir / "phototest.txt").read_text(encoding="utf-8").split())
    with (
        running(SERVICE_IMAGE, *flags, env=env) as container,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        container.wait_healthy(within=90)
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text

        created = client.post("/v1/jobs", params={"format": "text"}, files={"file": (scan.name, scan.read_bytes())})
        assert created.status_code == 202, created.text
        location = created.headers["location"]
        deadline = time.monotonic() + 90
        job = created.json()
        while job["status"] not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.3)
            job = client.get(location).json()
        assert job["status"] == "succeeded", job
        text = " ".join(client.get(f"{location}/result").text.split())
        assert Levenshtein.distance(text, truth) / len(truth) < 0.03, text

        assert redis_keys(redis) > 0, "the job's result should be cached in Redis"
        again = client.post("/v1/ocr", params={"format": "text"}, files={"file": (scan.name, scan.read_bytes())})
        assert again.status_code == 200 and again.headers.get("x-cache") == "hit", again.headers
