"""Admission slots follow the work, not the answer (issue 15's phantom 429s), against a real server.

A client that keeps at most `capacity` requests in flight must never see a 429: the slot of a
finished page is free before its answer reaches the client, and the slot of a client that gave
up (timed out, disconnected) is free as soon as it is gone, not when its page would have run.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
from PIL import Image, ImageDraw
from service_support import font, serve_process
from test_service_load import dense_page

A4_300DPI = (2480, 3508)


def a4_page(seed: int) -> bytes:
    """A full A4 page at 300 DPI with a few lines of text: A4-sized pixels, a short recognition."""
    image = Image.new("L", A4_300DPI, 255)
    draw = ImageDraw.Draw(image)
    for row in range(4):
        draw.text((200, 300 + row * 90), f"Page {seed} line {row} admission check", fill=0, font=font(50))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def server_env(tmp_path: Path) -> dict[str, str]:
    # One worker and one queued page: capacity 2. No cache, so every request is recognised.
    return {"OCR_WORKERS": "1", "OCR_QUEUE_SIZE": "1", "OCR_CACHE_TTL_SECONDS": "0", "OCR_DATA_DIR": str(tmp_path)}


async def test_capacity_clients_sending_a4_pages_back_to_back_never_see_429(tmp_path: Path) -> None:
    capacity, pages_each = 2, 3
    documents = [a4_page(seed) for seed in range(capacity)]
    with serve_process(server_env(tmp_path)) as server:

        async def client_loop(document: bytes) -> list[int]:
            statuses = []
            async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
                for _ in range(pages_each):
                    response = await client.post("/v1/ocr?format=text&preprocess=none", content=document)
                    statuses.append(response.status_code)
            return statuses

        results = await asyncio.wait_for(asyncio.gather(*(client_loop(d) for d in documents)), timeout=240)
    assert [status for statuses in results for status in statuses] == [200] * capacity * pages_each, results


async def test_a_client_that_gave_up_frees_its_slot_before_it_retries(tmp_path: Path) -> None:
    """The second client times out while its page is queued behind a long one, then retries at once.

    It has one request in flight, capacity is 2, so the retry must be admitted (it used to be 429:
    the abandoned request kept its admission slot and pool slot until its page would have run).
    """
    long_page, short_page = dense_page(), a4_page(7)
    with serve_process(server_env(tmp_path)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as patient:
            busy = asyncio.create_task(patient.post("/v1/ocr?format=text", content=long_page))
            await asyncio.sleep(0.3)  # the long page is on the only worker now
            async with httpx.AsyncClient(base_url=server.base_url, timeout=0.4) as hasty:
                try:
                    await hasty.post("/v1/ocr?format=text&preprocess=none", content=short_page)
                    raise AssertionError("the short page should have waited behind the long one")
                except httpx.TimeoutException:
                    pass
            await asyncio.sleep(0.2)  # the server notices the closed connection
            assert not busy.done(), "the long page must still run when the retry is sent"
            async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as retry:
                second = await retry.post("/v1/ocr?format=text&preprocess=none", content=short_page)
            first = await asyncio.wait_for(busy, timeout=120)
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert "admission" in second.text
