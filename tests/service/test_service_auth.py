"""API keys: both headers work, bad or missing keys get 401 + WWW-Authenticate, probes stay open, files rotate,
and a job belongs to the key that created it (stored as an opaque owner id, never as the key)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sqlite3
from pathlib import Path

import pytest
from service_support import LINE_ONE, has_words, make_settings, png, running_app

from ocr_service.http import auth
from ocr_service.http.auth import ApiKeyStore, key_owner
from ocr_service.logs import JsonFormatter

KEY = "s3cret-key-0123456789"


async def test_both_headers_are_accepted_and_others_refused(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, api_keys=(KEY, "another-key"))) as client:
        for headers in ({"authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}, {"x-api-key": "another-key"}):
            response = await client.post("/v1/ocr?format=text", content=png([LINE_ONE]), headers=headers)
            assert response.status_code == 200, (headers, response.text)
            assert has_words(response.text, LINE_ONE)
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {KEY}"}, {"x-api-key": ""}):
            response = await client.post("/v1/ocr", content=png([LINE_ONE]), headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == 'Bearer realm="catalyst-ocr"'
            assert response.json()["type"].endswith("/unauthorized")
            assert KEY not in response.text
        assert (await client.get("/v1/languages")).status_code == 401
        assert (await client.get("/v1/info", headers={"x-api-key": KEY})).status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/health", "/metrics", "/openapi.json", "/docs"])
async def test_probes_metrics_and_api_description_stay_open(tmp_path: Path, path: str) -> None:
    async with running_app(make_settings(tmp_path, api_keys=(KEY,))) as client:
        response = await client.get(path)
        assert response.status_code == 200, response.text


async def test_openapi_declares_security_when_keys_are_configured(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, api_keys=(KEY,))) as client:
        document = (await client.get("/openapi.json")).json()
        assert document["security"] == [{"bearer": []}, {"apiKey": []}]
        assert "401" in document["paths"]["/v1/ocr"]["post"]["responses"]
        assert document["paths"]["/livez"]["get"]["security"] == []


async def test_key_file_rotation_applies_without_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.2)
    key_file = tmp_path / "keys"
    key_file.write_text("# mounted Secret\nold-key\n")
    async with running_app(make_settings(tmp_path, api_keys_file=str(key_file))) as client:
        assert (await client.get("/v1/languages", headers={"x-api-key": "old-key"})).status_code == 200
        key_file.write_text("new-key\n")
        await asyncio.sleep(0.3)
        assert (await client.get("/v1/languages", headers={"x-api-key": "old-key"})).status_code == 401
        assert (await client.get("/v1/languages", headers={"x-api-key": "new-key"})).status_code == 200


def test_key_cache_rereads_only_after_its_ttl(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("first\n")
    now = [0.0]
    store = ApiKeyStore(make_settings(tmp_path, api_keys_file=str(key_file)), cache_seconds=5, clock=lambda: now[0])
    assert store.accepts("first")
    key_file.write_text("second\n")
    now[0] = 4.9
    assert store.accepts("first") and not store.accepts("second")
    now[0] = 5.0
    assert store.accepts("second") and not store.accepts("first")


async def test_unreadable_key_file_fails_closed(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, api_keys_file=str(tmp_path / "missing"))) as client:
        response = await client.get("/v1/languages", headers={"x-api-key": "anything"})
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get("/livez")).status_code == 200


async def test_keys_never_reach_the_logs(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        async with running_app(make_settings(tmp_path, api_keys=(KEY,))) as client:
            await client.get("/v1/languages", headers={"authorization": f"Bearer {KEY}"})
            await client.get("/v1/languages", headers={"x-api-key": KEY + "-wrong"})
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    logged = stream.getvalue()
    assert '"route": "/v1/languages"' in logged
    assert KEY not in logged


async def test_a_job_belongs_to_its_key_whichever_header_carries_it(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, api_keys=(KEY, "another-key"))) as client:
        await client.app.state.jobs.workers.stop()  # type: ignore[attr-defined]  # the job may stay queued
        created = await client.post(
            "/v1/jobs", content=png([LINE_ONE]), headers={"authorization": f"Bearer {KEY}", "content-type": "image/png"}
        )
        assert created.status_code == 202, created.text
        job_url = created.headers["location"]
        assert (await client.get(job_url, headers={"x-api-key": KEY})).status_code == 200
        other = await client.get(job_url, headers={"x-api-key": "another-key"})
        assert other.status_code == 404 and other.json()["type"].endswith("/job-not-found")
        assert (await client.get(job_url)).status_code == 401
    owners, stored = job_store_contents(tmp_path)
    assert owners == [key_owner(KEY)]
    assert KEY.encode() not in stored  # the key itself is never stored


def job_store_contents(data_dir: Path) -> tuple[list[str], bytes]:
    """The owners in the embedded job store, and every byte of its files (database and WAL)."""
    with contextlib.closing(sqlite3.connect(data_dir / "jobs.sqlite3")) as db:
        owners = [row[0] for row in db.execute("SELECT owner FROM ocr_jobs")]
    return owners, b"".join(path.read_bytes() for path in data_dir.glob("jobs.sqlite3*"))


def test_key_owner_is_stable_opaque_and_distinct_per_key() -> None:
    owner = key_owner(KEY)
    assert owner == key_owner(KEY) and len(owner) == 32 and int(owner, 16) >= 0
    assert owner != key_owner("another-key") and owner != key_owner(KEY + " ")
    assert KEY not in owner
