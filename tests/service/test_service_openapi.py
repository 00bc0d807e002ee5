"""The OpenAPI document matches reality: schemathesis drives a live `catalyst-ocr serve` from `/openapi.json`.

Every operation gets a bounded number of generated requests (valid and invalid), and every
check schemathesis has runs on every answer (no 5xx, documented status codes, content types,
headers and bodies, schema-violating requests rejected, schema-valid requests accepted), failing
the test on any finding.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance
from service_support import serve_process

from ocr_service.http.openapi import openapi_document
from ocr_service.settings import Settings

pytestmark = pytest.mark.xdist_group("service-process")

CONTENT_DEPENDENT = frozenset(
    {"unsupported-media-type", "undecodable-document", "too-many-pixels", "page-too-wide", "too-many-pages"}
)
"""Refusals that depend on the bytes of a document, which no schema can state: a multipart `file`
is `format: binary`, so random bytes are schema-valid there, and a schema-valid `pages` may name a
page the generated document lacks; likewise a `cursor` of `GET /v1/jobs` must name a job of the
caller's list, which a schema can only say is a string. Only these may answer schema-valid data
with a 4xx; schemathesis' `positive_data_acceptance` judges every other answer (a wrong `lang`, an
empty `content`, ...)."""

MAX_EXAMPLES = 15
GENERATION_ATTEMPTS = 5


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    data_dir = tmp_path_factory.mktemp("openapi-live")
    env = {"OCR_WORKERS": "2", "OCR_DATA_DIR": str(data_dir), "OCR_TIMEOUT_SECONDS": "30"}
    with serve_process(env) as server:
        yield schemathesis.openapi.from_url(f"{server.base_url}/openapi.json", wait_for_schema=30)


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda mode: mode.value)
def test_live_service_conforms_to_its_openapi_document(
    live_schema: schemathesis.BaseSchema, mode: schemathesis.GenerationMode
) -> None:
    operations = [result.ok() for result in live_schema.get_all_operations()]
    assert {operation.path for operation in operations} >= {"/v1/ocr", "/v1/info", "/readyz", "/metrics"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def drive(case: schemathesis.Case) -> None:
            response = case.call(timeout=60)
            case.validate_response(response, excluded_checks=[positive_data_acceptance])
            if not refused_for_what_no_schema_states(response):
                case.validate_response(response, checks=[positive_data_acceptance])

        for attempt in range(1, GENERATION_ATTEMPTS + 1):
            try:
                drive()
            except Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE  # no parameter or body to get wrong
            except ValueError as failure:
                if not is_schemathesis_binary_bug(failure) or attempt == GENERATION_ATTEMPTS:
                    failure.add_note(f"operation: {operation.method.upper()} {operation.path} ({mode.value} data)")
                    raise
                continue  # the generator itself crashed; draw a fresh set of examples
            except Exception as failure:
                failure.add_note(f"operation: {operation.method.upper()} {operation.path} ({mode.value} data)")
                raise
            break


def refused_for_what_no_schema_states(response: schemathesis.Response) -> bool:
    """A 4xx for the document's content (`CONTENT_DEPENDENT`), or for naming one option both in the
    query and in the body (each place is schema-valid alone; the API refuses the ambiguity)."""
    if response.status_code not in (400, 413, 415, 422):
        return False
    try:
        problem = response.json()
    except ValueError:
        return False
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1]
    if slug in CONTENT_DEPENDENT:
        return True
    detail = str(problem.get("detail", ""))
    return slug == "invalid-parameter" and (
        problem.get("param") in ("pages", "page", "file", "cursor") or "both in the query and in the body" in detail
    )


def is_schemathesis_binary_bug(failure: ValueError) -> bool:
    """Schemathesis 4.32.5 sometimes crashes while GENERATING negative data next to `format: binary`
    fields (`ValueError: Unsupported type: 'Binary'` in a filter; see schemathesis PR #4520). That is
    the tool failing before any request is sent, not the service answering wrongly."""
    return "Unsupported type: 'Binary'" in str(failure)


def test_document_is_valid_openapi_3_1_with_bounds_from_settings(tmp_path: Path) -> None:
    document = openapi_document(Settings(max_dpi=400, data_dir=str(tmp_path)), auth_enabled=False)
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()
    operation = document["paths"]["/v1/ocr"]["post"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert parameters["dpi"]["maximum"] == 400
    assert parameters["psm"]["enum"] == [1, *range(3, 14)]
    assert set(parameters["format"]["enum"]) == {"json", "text", "hocr", "tsv", "alto", "pdf"}
    assert parameters["deskew"]["type"] == "boolean"
    assert operation["requestBody"] == {"$ref": "#/components/requestBodies/Document"}
    body = document["components"]["requestBodies"]["Document"]["content"]
    assert set(body) >= {"multipart/form-data", "application/json", "image/png"}
    assert "application/octet-stream" not in body  # random bytes are no document: not promised
    content = body["application/json"]["schema"]["properties"]["content"]
    assert (
        content["minLength"] >= 1
        and re.fullmatch(content["pattern"], "aGk=")
        and not re.fullmatch(content["pattern"], "")
    )
    job_body = document["components"]["requestBodies"]["JobDocument"]["content"]["application/json"]["schema"]
    assert "callback_url" in job_body["properties"]
    assert set(operation["responses"]["200"]["content"]) == {
        "application/json",
        "text/plain",
        "text/html",
        "text/tab-separated-values",
        "application/xml",
        "application/pdf",
    }
    for status in ("400", "406", "413", "415", "422", "429", "500", "503", "504"):
        assert "application/problem+json" in operation["responses"][status]["content"]
    assert "401" not in operation["responses"], "no API keys configured: nothing answers 401"
    with_keys = openapi_document(Settings(data_dir=str(tmp_path)), auth_enabled=True)["paths"]["/v1/ocr"]["post"]
    assert "WWW-Authenticate" in with_keys["responses"]["401"]["headers"]
    assert "images are recognised at their own pixels" in parameters["dpi"]["description"], "PDFs only, as docs/api.md"
    for description in (document["info"]["description"], operation["description"]):
        assert "[docs/api.md](https://" in description, "a link, not a bare file name"


def test_document_served_is_the_one_built(tmp_path: Path) -> None:
    """`/openapi.json` of a built app equals what `openapi_document` produces (plus the jobs paths)."""
    from ocr_service.app import build_app
    from ocr_service.http import jobs

    settings = Settings(data_dir=str(tmp_path))
    app = build_app(settings)
    transport = httpx.ASGITransport(app=app)

    async def fetch() -> dict[str, object]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/openapi.json")).json()  # type: ignore[no-any-return]

    import asyncio

    served = asyncio.run(fetch())
    assert served == openapi_document(settings, auth_enabled=False, extra_paths=jobs.openapi_paths)
    assert {"/v1/preview", "/demo"} <= set(served["paths"])
