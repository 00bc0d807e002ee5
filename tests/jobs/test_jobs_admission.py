"""`POST /v1/jobs` has an admission gate (issue 10, item 5): uploads held in memory stay bounded.

200 concurrent 20 MB job uploads used to be read in full (4.1 GB RSS) before any answer; now no
more submissions hold a body than the pool has slots, and the rest get 429 before their body is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from jobs_support import job_settings, pdf, running_app, wait_final


async def test_job_uploads_beyond_the_pools_slots_get_429_before_their_body_is_read(tmp_path: Path) -> None:
    release = asyncio.Event()
    document = pdf(1)
    reading = 0  # uploads whose body the service has started to read: admitted ones

    async def held_upload() -> AsyncIterator[bytes]:
        nonlocal reading
        reading += 1
        yield document[:100]
        await asyncio.wait_for(release.wait(), timeout=30)
        yield document[100:]

    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(10_000):
            pulled += 1
            yield b"\0" * 1024

    headers = {"content-type": "application/pdf"}
    async with running_app(job_settings(tmp_path, workers=1, queue_size=1, job_workers=1)) as client:  # 2 slots
        held = [asyncio.create_task(client.post("/v1/jobs", content=held_upload(), headers=headers)) for _ in range(2)]
        for _ in range(1000):  # until both uploads are admitted and being read (at most ~10 s)
            if reading == 2:
                break
            await asyncio.sleep(0.01)
        assert reading == 2
        refused = await asyncio.wait_for(client.post("/v1/jobs", content=endless(), headers=headers), timeout=10)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/overloaded")
        assert int(refused.headers["retry-after"]) >= 1
        assert pulled <= 1, "the refused body must not be read"
        release.set()
        accepted = await asyncio.wait_for(asyncio.gather(*held), timeout=60)
        assert [response.status_code for response in accepted] == [202, 202]
        for response in accepted:  # accepted jobs reach a final state
            assert (await wait_final(client, response.json()["id"]))["status"] == "succeeded"
        # The gate is free again once the submissions were stored.
        again = await client.post("/v1/jobs", content=document, headers=headers)
        assert again.status_code in (200, 202), again.text
