"""Metrics that move, with route templates; request ids; JSON access logs; info, languages and the probes."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx
import pytest
from service_support import LINE_ONE, make_settings, metric_value, png, running_app
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ocr_service.logs import REQUEST_ID, JsonFormatter, configure_logging

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_metrics_count_requests_by_route_template(api: httpx.AsyncClient) -> None:
    before = (await api.get("/metrics")).text
    pages_before = metric_value(before, "ocr_pages_recognized_total")
    ok_before = metric_value(before, "ocr_http_requests_total", route="/v1/ocr", method="POST", status="200")
    for number in range(2):  # distinct documents, so the result cache cannot answer
        document = png([f"{LINE_ONE} metrics {number} {id(before)}"])
        assert (await api.post("/v1/ocr", content=document)).status_code == 200
    await api.get("/v1/does-not-exist-1")
    await api.get("/v1/does-not-exist-2")
    await api.post("/v1/ocr", content=b"")
    after = (await api.get("/metrics")).text

    assert metric_value(after, "ocr_http_requests_total", route="/v1/ocr", method="POST", status="200") == ok_before + 2
    assert metric_value(after, "ocr_pages_recognized_total") == pages_before + 2
    assert metric_value(after, "ocr_recognition_duration_seconds_count", format="json") >= 2
    assert metric_value(after, "ocr_recognition_confidence_count") >= 2
    assert metric_value(after, "ocr_http_request_duration_seconds_count", route="/v1/ocr", method="POST") >= 3
    assert metric_value(after, "ocr_rejected_requests_total", reason="invalid-parameter", status="400") >= 1
    assert metric_value(after, "ocr_http_requests_total", route="<unmatched>", method="GET", status="404") >= 2
    assert "does-not-exist" not in after
    assert metric_value(after, "ocr_pool_workers") == 2
    assert metric_value(after, "ocr_pool_queue_capacity") == 8
    assert "ocr_http_requests_in_flight" in after
    assert "process_resident_memory_bytes" in after
    assert "_created" not in after, "no creation-timestamp series beside every counter and histogram"


async def test_request_id_is_echoed_or_generated(api: httpx.AsyncClient) -> None:
    response = await api.get("/livez", headers={"x-request-id": "abc-123.trace"})
    assert response.headers["x-request-id"] == "abc-123.trace"
    generated = (await api.get("/livez")).headers["x-request-id"]
    assert len(generated) == 32 and generated != (await api.get("/livez")).headers["x-request-id"]
    injected = (await api.get("/livez", headers={"x-request-id": "bad id\twith spaces"})).headers["x-request-id"]
    assert injected != "bad id\twith spaces" and len(injected) == 32
    problem = await api.get("/nowhere", headers={"x-request-id": "req-404"})
    assert problem.headers["x-request-id"] == "req-404"


async def test_access_log_is_one_json_object_per_request(api: httpx.AsyncClient) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    try:
        await api.post("/v1/ocr?lang=xyz", content=png([LINE_ONE]), headers={"x-request-id": "log-test-1"})
        await api.get("/livez")  # probes succeed every few seconds: not logged at info level
    finally:
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers if h.get_name() != "catalyst-ocr"]
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [e for e in entries if e["logger"] == "catalyst_ocr.access"]
    assert len(access) == 1
    entry = access[0]
    assert entry["request_id"] == "log-test-1"
    assert entry["route"] == "/v1/ocr" and entry["method"] == "POST" and entry["status"] == 400
    assert entry["duration_ms"] >= 0 and entry["level"] == "info" and entry["ts"].endswith("Z")
    assert entry["message"] == "POST /v1/ocr 400"
    assert REQUEST_ID.get() is None


async def test_log_timestamps_are_right_within_a_second_across_seconds_and_back() -> None:
    """The formatter reuses the formatted second while log lines stay within it."""
    formatter = JsonFormatter()
    record = logging.LogRecord("catalyst_ocr.test", logging.INFO, __file__, 1, "tick", (), None)
    stamps = []
    for created in (86_399.5, 86_399.75, 86_400.0, 86_400.25, 86_399.125, 1_700_000_000.125):
        record.created = created
        stamps.append(json.loads(formatter.format(record))["ts"])
    assert stamps == [
        "1970-01-01T23:59:59.500Z",
        "1970-01-01T23:59:59.750Z",
        "1970-01-02T00:00:00.000Z",
        "1970-01-02T00:00:00.250Z",
        "1970-01-01T23:59:59.125Z",
        "2023-11-14T22:13:20.125Z",
    ]


async def test_languages_and_info(api: httpx.AsyncClient) -> None:
    languages = (await api.get("/v1/languages")).json()
    assert "eng" in languages["languages"] and "osd" not in languages["languages"]
    assert languages["default"] == "eng"
    info = (await api.get("/v1/info")).json()
    assert info["service"]["name"] == "catalyst-ocr"
    assert info["engine"]["tesseract"].startswith("5.")
    assert info["limits"]["max_upload_bytes"] == 25 * 1024 * 1024
    assert info["limits"]["workers"] == 2
    assert info["formats"]["pdf"] == "application/pdf"
    assert "deskew" in info["preprocess_steps"]


async def test_liveness_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/livez")).json() == {"status": "alive"}
    for path in ("/readyz", "/health"):
        body = (await api.get(path)).json()
        assert body["status"] == "ready"
        assert body["checks"]["engine"]["ok"] and body["checks"]["languages"]["ok"]


async def test_a_default_language_that_is_not_installed_is_not_ready(tmp_path: Path) -> None:
    """Before: ready, while every request without `lang` was refused."""
    async with running_app(make_settings(tmp_path, default_lang="eng+klingon")) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        detail = response.json()["checks"]["languages"]["detail"]
        assert "OCR_DEFAULT_LANG=eng+klingon" in detail and "klingon" in detail
    async with running_app(make_settings(tmp_path, default_lang="eng deu")) as client:
        assert (await client.get("/readyz")).status_code == 200, "a space separates languages as + does"


async def test_readiness_names_the_failing_check(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, languages=("eng", "klingon"))) as client:

        async def database() -> None:
            raise ConnectionError("connection refused on 127.0.0.1:5432")

        client.app.state.readiness_checks.add("postgresql", database)  # type: ignore[attr-defined]
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/unavailable")
        assert "klingon" in problem["detail"] and "postgresql" in problem["detail"]
        assert problem["checks"]["engine"]["ok"] is True
        assert problem["checks"]["languages"]["ok"] is False
        assert "connection refused" in problem["checks"]["postgresql"]["detail"]
        assert (await client.get("/livez")).status_code == 200


async def test_docs_page_is_served_without_external_resources(api: httpx.AsyncClient) -> None:
    page = (await api.get("/docs")).text
    assert "http://" not in page and "https://" not in page
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "initializer.js"):
        assert f"docs/assets/{asset}" in page
        response = await api.get(f"/docs/assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 100
    slash = await api.get("/docs/")  # its relative asset URLs would miss from here: one address for the page
    assert slash.status_code == 308 and slash.headers["location"] == "../docs"
    assert (await api.get("/docs/", follow_redirects=True)).text == page


async def test_catch_all_answers_a_bug_with_a_logged_500_problem(tmp_path: Path) -> None:
    """The last-resort handler works (a deliberately broken route), even though no input reaches it."""

    async def broken(request: Request) -> Response:
        raise ZeroDivisionError("secret internals")

    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    try:
        async with running_app(make_settings(tmp_path)) as client:
            client.app.router.routes.append(Route("/broken", broken))  # type: ignore[attr-defined]
            response = await client.get("/broken", headers={"x-request-id": "bug-1"})
    finally:
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers if h.get_name() != "catalyst-ocr"]
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "bug-1"
    assert response.json()["type"].endswith("/internal-error")
    assert "secret internals" not in response.text
    errors = [json.loads(line) for line in stream.getvalue().splitlines() if '"catalyst_ocr.errors"' in line]
    assert errors and errors[0]["request_id"] == "bug-1" and "ZeroDivisionError" in errors[0]["exception"]
