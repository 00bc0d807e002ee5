"""Jobs belong to the API key that created them, on SQLite and on real PostgreSQL: another key's
job is 404 on every route (and is not cancelled by trying), Idempotency-Keys are per key,
authentication off changes nothing, and a store at schema version 1 migrates with its jobs intact."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_support import (
    STORE_DOC,
    Receiver,
    finals,
    job_settings,
    new_job,
    parse_sse,
    pdf,
    running_app,
    wait_final,
    words,
)

from ocr_service.jobs import postgres, sqlite
from ocr_service.jobs.errors import IdempotencyConflict
from ocr_service.jobs.models import JobStatus, NewJob, options_to_json
from ocr_service.jobs.postgres import PostgresDatabase
from ocr_service.jobs.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from ocr_service.jobs.sqlite import SqliteDatabase
from ocr_service.jobs.sqlstore import Database, SqlJobStore, Transaction

OWNER_A, OWNER_B = "owner-a", "owner-b"
KEY_A, KEY_B = "tenant-a-key-0123456789", "tenant-b-key-9876543210"
PDF_TYPE = {"content-type": "application/pdf"}


# -- the store --------------------------------------------------------------------------------


async def test_an_owner_sees_its_own_and_ownerless_jobs_only(store: SqlJobStore) -> None:
    mine, _ = await store.create_job(new_job(owner=OWNER_A))
    anonymous, _ = await store.create_job(new_job())
    assert mine.owner == OWNER_A and anonymous.owner is None

    assert await store.get_job(mine.id, OWNER_B) is None
    assert await store.cancel_job(mine.id, OWNER_B) is None
    untouched = await store.get_job(mine.id)  # no owner: authentication off sees every job
    assert untouched is not None and untouched.status is JobStatus.QUEUED
    assert await finals(store, mine.id) == []  # the refused cancel left no trace
    assert await store.claim_page("w", 30) is not None  # and its pages are still queued

    seen = await store.get_job(mine.id, OWNER_A)
    assert seen is not None and seen.id == mine.id
    assert await store.get_job(anonymous.id, OWNER_B) is not None  # created without a key: everyone's
    cancelled = await store.cancel_job(mine.id, OWNER_A)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert await finals(store, mine.id) == ["cancelled"]


async def test_listing_pages_through_an_owners_jobs_newest_first(store: SqlJobStore) -> None:
    mine = []
    for _ in range(5):
        mine.append((await store.create_job(new_job(owner=OWNER_A)))[0])
        await asyncio.sleep(0.003)  # SQLite's clock has 1 ms steps; jobs within one step are ordered by id
    theirs, _ = await store.create_job(new_job(owner=OWNER_B))
    anonymous, _ = await store.create_job(new_job())
    await store.cancel_job(mine[1].id, OWNER_A)

    seen, after = [], None
    while True:
        listed = await store.list_jobs(OWNER_A, after=after, limit=2)
        assert listed is not None
        jobs, more = listed
        seen += [job.id for job in jobs]
        if not more:
            break
        after = jobs[-1].id
    assert seen == [job.id for job in reversed(mine)], "newest first, each once, only A's (not ownerless ones)"

    cancelled = await store.list_jobs(OWNER_A, status=JobStatus.CANCELLED)
    assert cancelled is not None and [job.id for job in cancelled[0]] == [mine[1].id] and not cancelled[1]
    everyone = await store.list_jobs(None, limit=100)  # authentication off: every job
    assert everyone is not None and {theirs.id, anonymous.id} <= {job.id for job in everyone[0]}
    assert await store.list_jobs(OWNER_B, after=mine[0].id) is None, "another owner's job is no cursor"


async def test_idempotency_keys_are_scoped_per_owner(store: SqlJobStore) -> None:
    a, a_created = await store.create_job(new_job(key="order-1", owner=OWNER_A))
    b, b_created = await store.create_job(new_job(key="order-1", owner=OWNER_B, document=b"B's document"))
    assert a_created and b_created and a.id != b.id and b.owner == OWNER_B

    a_again, created = await store.create_job(new_job(key="order-1", owner=OWNER_A))
    assert not created and a_again.id == a.id
    b_again, created = await store.create_job(new_job(key="order-1", owner=OWNER_B, document=b"B's document"))
    assert not created and b_again.id == b.id
    with pytest.raises(IdempotencyConflict) as conflict:
        await store.create_job(new_job(key="order-1", owner=OWNER_A, document=b"B's document"))
    assert a.id in conflict.value.detail and b.id not in conflict.value.detail

    anonymous, created = await store.create_job(new_job(key="order-1"))
    assert created and anonymous.id not in (a.id, b.id)
    anonymous_again, created = await store.create_job(new_job(key="order-1"))
    assert not created and anonymous_again.id == anonymous.id  # without owners the key still dedupes


async def test_concurrent_submissions_with_one_key_make_one_job_per_owner(store: SqlJobStore) -> None:
    owners = [OWNER_A, OWNER_B, None] * 4
    outcomes = await asyncio.gather(*(store.create_job(new_job(key="same", owner=o)) for o in owners))
    by_owner: dict[str | None, set[str]] = {}
    for owner, (job, _) in zip(owners, outcomes, strict=True):
        by_owner.setdefault(owner, set()).add(job.id)
    assert all(len(ids) == 1 for ids in by_owner.values()), by_owner
    assert len(set().union(*by_owner.values())) == 3
    assert sum(created for _, created in outcomes) == 3


# -- migration from schema version 1 ----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Database]:
    """Opens the same (initially empty) database each call, so it can be reopened by newer code."""
    if request.param == "sqlite":
        path = tmp_path / "jobs.sqlite3"
        return lambda: SqliteDatabase(path)
    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresDatabase(url)


async def insert_version_1_job(tx: Transaction, job_id: str, new: NewJob) -> None:
    """The rows version 1's `create_job` wrote (no `owner` column existed)."""
    await tx.execute(
        """INSERT INTO ocr_jobs (id, status, created_at, updated_at, options, filename, document_sha256,
               pages_total, idempotency_key, request_hash, callback_url)
           VALUES ($1, 'queued', {now}, {now}, $2, $3, $4, $5, $6, $7, $8)""",
        job_id,
        options_to_json(new.options),
        new.filename,
        new.document_sha256,
        len(new.page_numbers),
        new.idempotency_key,
        new.fingerprint,
        new.callback_url,
    )
    await tx.execute("INSERT INTO ocr_job_inputs (job_id, data) VALUES ($1, $2)", job_id, new.document)
    await tx.executemany(
        "INSERT INTO ocr_job_pages (job_id, idx, page_number, state, queued_at) VALUES ($1, $2, $3, 'queued', {now})",
        [(job_id, idx, number) for idx, number in enumerate(new.page_numbers)],
    )
    data = json.dumps({"status": "queued", "pages_done": 0, "pages_total": len(new.page_numbers)})
    await tx.execute(
        "INSERT INTO ocr_job_events (job_id, at, kind, data) VALUES ($1, {now}, 'queued', $2)", job_id, data
    )


async def test_a_version_1_store_migrates_with_its_jobs_intact(
    database_factory: Callable[[], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = new_job(pages=2, key="legacy-key", callback_url="http://127.0.0.1:9/hook")
    with monkeypatch.context() as old_code:
        old_code.setattr(postgres, "POSTGRES_MIGRATIONS", POSTGRES_MIGRATIONS[:1])
        old_code.setattr(sqlite, "SQLITE_MIGRATIONS", SQLITE_MIGRATIONS[:1])
        old = database_factory()
        await old.open()
        try:
            async with old.transaction() as tx:
                assert [r["version"] for r in await tx.fetch("SELECT version FROM ocr_schema_migrations")] == [1]
                await insert_version_1_job(tx, "legacy-job", legacy)
        finally:
            await old.close()

    store = SqlJobStore(database_factory())
    await store.open()
    try:
        async with store.db.transaction() as tx:
            versions = [r["version"] for r in await tx.fetch("SELECT version FROM ocr_schema_migrations ORDER BY 1")]
        assert versions == [1, 2]
        job = await store.get_job("legacy-job")
        assert job is not None and job.status is JobStatus.QUEUED and job.owner is None and job.pages_total == 2
        assert await store.get_job("legacy-job", OWNER_A) is not None  # jobs from before owners stay readable
        assert await store.load_input("legacy-job") == STORE_DOC  # the rebuilt table kept its children
        assert [e.kind for e in await store.events_since("legacy-job", 0)] == ["queued"]

        replayed, created = await store.create_job(legacy)
        assert not created and replayed.id == "legacy-job"
        with pytest.raises(IdempotencyConflict):
            await store.create_job(replace(legacy, document=b"another document", document_sha256=""))
        owned, created = await store.create_job(replace(legacy, owner=OWNER_A))
        assert created and owned.id != "legacy-job"

        while (page := await store.claim_page("w", 30)) is not None:
            assert await store.complete_page(page, "w", {"text": f"p{page.page_number}".encode()}, cached=False)
        done = await store.get_job("legacy-job")
        assert done is not None and done.status is JobStatus.SUCCEEDED
        assert await store.page_results("legacy-job", "text") == [b"p1", b"p2"]

        delivered = []
        while (task := await store.claim_callback(lease_seconds=30)) is not None:
            delivered.append(task.job_id)
            await store.finish_callback(task.job_id, delivered=True, retry_in=None, error=None)
        assert sorted(delivered) == sorted(["legacy-job", owned.id])  # callbacks still go out

        await asyncio.sleep(0.05)
        assert await store.delete_expired(0) == 2
        async with store.db.transaction() as tx:  # deleting a job still cascades to what refers to it
            for table in ("ocr_job_inputs", "ocr_job_pages", "ocr_job_results", "ocr_job_events"):
                row = await tx.fetchrow(f"SELECT count(*) AS n FROM {table}")
                assert row is not None and int(row["n"]) == 0, table
    finally:
        await store.close()


# -- the HTTP API -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def tenants(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    """The app with two API keys, and a client for each (key A by header, key B as a bearer token)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    settings = job_settings(tmp_path, database_url=url, api_keys=(KEY_A, KEY_B))
    async with running_app(settings) as anonymous:
        transport = httpx.ASGITransport(app=anonymous.app)  # type: ignore[attr-defined]
        base = str(anonymous.base_url)
        async with (
            httpx.AsyncClient(transport=transport, base_url=base, headers={"x-api-key": KEY_A}, timeout=60) as a,
            httpx.AsyncClient(
                transport=transport, base_url=base, headers={"authorization": f"Bearer {KEY_B}"}, timeout=60
            ) as b,
        ):
            a.app = b.app = anonymous.app  # type: ignore[attr-defined]
            yield a, b


async def stop_workers(client: httpx.AsyncClient) -> None:
    """Nothing recognises from now on: submitted jobs stay queued."""
    await client.app.state.jobs.workers.stop()  # type: ignore[attr-defined]


async def submit(client: httpx.AsyncClient, document: bytes, **params: str) -> str:
    response = await client.post("/v1/jobs", content=document, headers=PDF_TYPE, params=params)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_another_keys_job_is_not_found_on_every_route_and_not_cancelled(tenants: tuple[Any, Any]) -> None:
    a, b = tenants
    await stop_workers(a)
    job_id = await submit(a, pdf(2))
    unknown = str(uuid.uuid4())
    for method, suffix in (("GET", ""), ("GET", "/result"), ("GET", "/events"), ("DELETE", "")):
        response = await b.request(method, f"/v1/jobs/{job_id}{suffix}")
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/job-not-found")
        missing = (await b.request(method, f"/v1/jobs/{unknown}{suffix}")).json()  # indistinguishable from this
        assert problem["detail"].replace(job_id, unknown) == missing["detail"]
        assert {k: v for k, v in problem.items() if k not in ("detail", "instance")} == {
            k: v for k, v in missing.items() if k not in ("detail", "instance")
        }

    still = await a.get(f"/v1/jobs/{job_id}")
    assert still.status_code == 200 and still.json()["status"] == "queued"  # B's DELETE cancelled nothing
    not_yet = await a.get(f"/v1/jobs/{job_id}/result")
    assert not_yet.status_code == 409 and not_yet.json()["type"].endswith("/job-not-finished")
    cancelled = await a.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    events = parse_sse((await a.get(f"/v1/jobs/{job_id}/events")).text)
    assert [kind for kind, _ in events] == ["queued", "cancelled"]
    assert (await b.get(f"/v1/jobs/{job_id}/events")).status_code == 404
    assert (await a.get(f"/v1/jobs/{job_id}", headers={"x-api-key": ""})).status_code == 401


async def test_each_key_lists_only_its_own_jobs(tenants: tuple[Any, Any]) -> None:
    a, b = tenants
    await stop_workers(a)
    a_ids = [await submit(a, pdf(1)) for _ in range(3)]
    b_id = await submit(b, pdf(1))
    await a.delete(f"/v1/jobs/{a_ids[0]}")

    first = await a.get("/v1/jobs", params={"limit": "2"})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [job["id"] for job in page["jobs"]] == [a_ids[2], a_ids[1]]
    assert page["next_cursor"] == a_ids[1] and page["jobs"][0]["links"]["self"] == f"/v1/jobs/{a_ids[2]}"
    second = (await a.get(page["links"]["next"])).json()
    assert [job["id"] for job in second["jobs"]] == [a_ids[0]] and second["next_cursor"] is None
    queued = (await a.get("/v1/jobs", params={"status": "queued"})).json()
    assert [job["id"] for job in queued["jobs"]] == [a_ids[2], a_ids[1]]
    assert [job["id"] for job in (await b.get("/v1/jobs")).json()["jobs"]] == [b_id]

    foreign = await b.get("/v1/jobs", params={"cursor": a_ids[1]})
    assert foreign.status_code == 400 and foreign.json()["param"] == "cursor"
    for params in ({"limit": "0"}, {"limit": "101"}, {"status": "done"}, {"sort": "asc"}):
        assert (await a.get("/v1/jobs", params=params)).status_code == 400, params
    assert (await a.get("/v1/jobs", headers={"x-api-key": ""})).status_code == 401
    wrong = await a.put("/v1/jobs")
    assert wrong.status_code == 405 and set(wrong.headers["allow"].split(", ")) >= {"GET", "POST"}


async def test_each_key_gets_its_own_results_and_callbacks(tenants: tuple[Any, Any], receiver: Receiver) -> None:
    a, b = tenants
    deliveries = receiver.deliveries
    a_id = await submit(a, pdf(1), format="text", callback_url=receiver.url)
    b_id = await submit(b, pdf(1, start=2), format="text")
    assert (await wait_final(a, a_id))["status"] == "succeeded"
    assert (await wait_final(b, b_id))["status"] == "succeeded"
    assert words((await a.get(f"/v1/jobs/{a_id}/result")).text) == ["alpha", "page", "1"]
    assert words((await b.get(f"/v1/jobs/{b_id}/result")).text) == ["bravo", "page", "2"]
    for other, job_id in ((b, a_id), (a, b_id)):
        for suffix in ("", "/result", "/events"):
            assert (await other.get(f"/v1/jobs/{job_id}{suffix}")).status_code == 404, suffix
    own_events = parse_sse((await a.get(f"/v1/jobs/{a_id}/events")).text)
    assert own_events[-1][0] == "succeeded"
    async with asyncio.timeout(20):
        while not deliveries:  # noqa: ASYNC110 (the receiver runs in its own thread)
            await asyncio.sleep(0.1)
    assert [d["body"]["job"]["id"] for d in deliveries] == [a_id]  # the owned job's callback went out
    assert deliveries[0]["signature_ok"] and KEY_A not in json.dumps(deliveries)


async def test_one_idempotency_key_from_two_api_keys_makes_two_jobs(tenants: tuple[Any, Any]) -> None:
    a, b = tenants
    await stop_workers(a)
    key = {"Idempotency-Key": "order-1", **PDF_TYPE}
    first_a = await a.post("/v1/jobs", content=pdf(1), headers=key)
    first_b = await b.post("/v1/jobs", content=pdf(1, start=2), headers=key)  # another tenant's request
    assert (first_a.status_code, first_b.status_code) == (202, 202), first_b.text
    a_id, b_id = first_a.json()["id"], first_b.json()["id"]
    assert a_id != b_id

    again_b = await b.post("/v1/jobs", content=pdf(1, start=2), headers=key)
    assert again_b.status_code == 200 and again_b.headers["idempotent-replayed"] == "true"
    assert again_b.json()["id"] == b_id
    again_a = await a.post("/v1/jobs", content=pdf(1), headers=key)
    assert again_a.status_code == 200 and again_a.json()["id"] == a_id
    conflict = await a.post("/v1/jobs", content=pdf(1, start=2), headers=key)
    assert conflict.status_code == 409 and conflict.json()["type"].endswith("/idempotency-key-reused")
    assert a_id in conflict.json()["detail"] and b_id not in conflict.json()["detail"]
    assert (await b.get(f"/v1/jobs/{a_id}")).status_code == 404


async def test_without_api_keys_every_caller_shares_jobs_and_idempotency_keys(tmp_path: Path) -> None:
    """Authentication off: headers that look like keys are ignored; nothing is scoped."""
    async with running_app(job_settings(tmp_path)) as client:
        await stop_workers(client)
        key = {"Idempotency-Key": "order-1", **PDF_TYPE}
        first = await client.post("/v1/jobs", content=pdf(1), headers={**key, "x-api-key": "caller-one"})
        again = await client.post("/v1/jobs", content=pdf(1), headers={**key, "x-api-key": "caller-two"})
        assert first.status_code == 202 and again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        job_url = f"/v1/jobs/{first.json()['id']}"
        assert (await client.get(job_url, headers={"authorization": "Bearer caller-three"})).status_code == 200
        assert (await client.delete(job_url, headers={"x-api-key": "caller-four"})).json()["status"] == "cancelled"
