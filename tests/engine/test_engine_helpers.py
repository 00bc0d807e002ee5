"""The bounded helper threads: a full pool refuses at once, a deadline ends the wait and cancels the call."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ocr_service.deadline import Deadline
from ocr_service.engine.helpers import HelperPool
from ocr_service.errors import Overloaded, RecognitionTimeout


async def test_calls_past_threads_plus_queue_are_refused_at_once() -> None:
    helpers = HelperPool(threads=1, queue_size=1)
    release = threading.Event()
    try:
        held = [asyncio.create_task(helpers.run(release.wait, 10)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert helpers.in_use == 2
        started = time.perf_counter()
        with pytest.raises(Overloaded) as refused:
            await helpers.run(lambda: "never")
        assert time.perf_counter() - started < 0.1
        assert refused.value.retry_after == 1
        release.set()
        assert await asyncio.gather(*held) == [True, True]
        assert helpers.in_use == 0
        assert await helpers.run(lambda: "again") == "again"
    finally:
        release.set()
        helpers.close()


async def test_a_deadline_ends_the_wait_cancels_the_call_and_keeps_its_slot_until_it_ends() -> None:
    helpers = HelperPool(threads=1, queue_size=0)
    stopped = threading.Event()

    def steps(deadline: Deadline) -> str:  # a call that checks its deadline between steps, as documents do
        for _ in range(1000):
            if deadline.cancelled:
                stopped.set()
                return "stopped"
            time.sleep(0.01)
        return "ran to the end"

    try:
        deadline = Deadline.after(0.2)
        started = time.perf_counter()
        with pytest.raises(RecognitionTimeout):
            await helpers.run(steps, deadline, deadline=deadline)
        assert time.perf_counter() - started < 0.5
        assert deadline.cancelled
        assert await asyncio.to_thread(stopped.wait, 2)
        for _ in range(100):
            if helpers.in_use == 0:
                break
            await asyncio.sleep(0.01)
        assert helpers.in_use == 0
    finally:
        helpers.close()
