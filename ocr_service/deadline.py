"""`Deadline`: one page's time limit and cancel switch, checked between every step of its work.

A page's work runs in a worker thread: decode a frame, preprocess step by step, recognise,
render. asyncio can stop waiting for it at the deadline, but only the thread itself can stop
doing it, so every step between bytes and answer calls `check()` before it starts, and the one
long native call (Tesseract's Recognize) registers a hook with `on_cancel` that cuts it short.

The caller's side (the worker pool) calls `cancel()` when it stops waiting: the deadline
passed, the client went away, or a job was cancelled. From then on `check()` raises and the
hooks have fired, whatever the thread is doing. Thread-safe; stdlib only, so `documents` (the
lowest layer that checks it) can import it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from ocr_service.errors import RecognitionTimeout


class Deadline:
    """An absolute `time.monotonic()` limit plus a cancel flag (see the module docstring)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self._lock = threading.Lock()
        self._cancelled = False
        self._hooks: list[Callable[[], None]] = []

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def remaining(self) -> float:
        """Seconds left (<= 0 once passed, and 0 once cancelled)."""
        return 0.0 if self._cancelled else self.at - time.monotonic()

    def check(self, step: str) -> None:
        """Raise `RecognitionTimeout` naming `step` if the work must stop before doing it."""
        if self._cancelled:
            raise RecognitionTimeout(f"{step}: stopped, the request was cancelled or timed out")
        if time.monotonic() >= self.at:
            raise RecognitionTimeout(f"{step}: the time limit passed")

    def cancel(self) -> None:
        """Stop the work: later `check()`s raise and every registered hook runs now (once)."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    @contextlib.contextmanager
    def on_cancel(self, hook: Callable[[], None]) -> Iterator[None]:
        """Run `hook` if the work is cancelled while the block runs (at once when it already is)."""
        with self._lock:
            already = self._cancelled
            if not already:
                self._hooks.append(hook)
        if already:
            hook()
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._hooks.remove(hook)
