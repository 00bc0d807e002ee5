"""The real `catalyst-ocr serve` process on loopback: HTTP end to end, streamed limits, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from service_support import LINE_ONE, has_words, metric_value, png, serve_process

pytestmark = pytest.mark.xdist_group("service-process")

WORDS = ["grace", "period", "finishes", "the", "work", "in", "flight", "before", "the", "engine", "pool", "closes"]


def slow_page() -> bytes:
    """A dense page that keeps a single worker busy for a good second."""
    return png([" ".join(WORDS[(row + col) % len(WORDS)] for col in range(8)) for row in range(40)], size=28)


async def _wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(300):  # at most ~30 s
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the service never became ready")


async def test_serve_answers_over_http_and_refuses_an_endless_stream(tmp_path: Path) -> None:
    env = {"OCR_WORKERS": "1", "OCR_DATA_DIR": str(tmp_path), "OCR_MAX_UPLOAD_BYTES": str(256 * 1024)}
    with serve_process(env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            await _wait_ready(client)
            response = await client.post("/v1/ocr", files={"file": ("scan.png", png([LINE_ONE]))})
            assert response.status_code == 200, response.text
            assert has_words(response.json()["text"], LINE_ONE)
            assert response.headers["x-request-id"]

            sent = 0

            async def endless() -> AsyncIterator[bytes]:
                nonlocal sent
                for _ in range(4096):  # 256 MiB at most; the server must stop us long before
                    sent += 64 * 1024
                    yield b"\0" * (64 * 1024)

            try:
                refused = await client.post("/v1/ocr", content=endless(), headers={"content-type": "image/png"})
            except httpx.TransportError:
                refused = None  # the server may close the connection before the client reads the answer
            if refused is not None:
                assert refused.status_code == 413
                assert refused.json()["type"].endswith("/payload-too-large")
            assert sent < 16 * 1024 * 1024, f"the server kept reading {sent} bytes past a 256 KiB limit"

            metrics = (await client.get("/metrics")).text
            assert metric_value(metrics, "ocr_rejected_requests_total", reason="payload-too-large") == 1
    assert server.process.returncode in (0, -signal.SIGTERM)
    access = [e for e in server.json_logs() if e.get("logger") == "catalyst_ocr.access"]
    assert any(e["route"] == "/v1/ocr" and e["status"] == 200 for e in access)


async def test_sigterm_finishes_the_request_in_flight_then_exits(tmp_path: Path) -> None:
    env = {"OCR_WORKERS": "1", "OCR_DATA_DIR": str(tmp_path), "OCR_SHUTDOWN_GRACE_SECONDS": "60"}
    with serve_process(env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
            await _wait_ready(client)
            in_flight = asyncio.create_task(client.post("/v1/ocr?format=text", content=slow_page()))
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as probe:
                for _ in range(600):  # until the page is on the worker (at most ~30 s)
                    if metric_value((await probe.get("/metrics")).text, "ocr_pool_busy_workers") >= 1:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the request never reached a worker")
            signalled = time.monotonic()
            server.terminate()

            response = await asyncio.wait_for(in_flight, timeout=90)
            assert response.status_code == 200, response.text
            assert has_words(response.text, " ".join(WORDS[:8]))

            exit_code = await asyncio.to_thread(server.process.wait, 60)
            # uvicorn re-raises the signal once shut down cleanly, so the exit status reports SIGTERM.
            assert exit_code in (0, -signal.SIGTERM)
            assert time.monotonic() - signalled < 60
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as late:
                await late.get("/livez")
    messages = [str(e.get("message", "")) for e in server.json_logs()]
    assert any("Shutting down" in message for message in messages), messages[-10:]
