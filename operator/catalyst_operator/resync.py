"""The periodic resync: one background thread re-reconciles every resource that is due.

Why not `kopf.timer`: kopf puts a finalizer on every object a timer (or daemon) runs for, so that
it can stop the timer before the object goes. With the operator down, deleting an OcrDeployment then
hangs on that finalizer — and its namespace and the CRD with it (issue 9). Nothing needs the
finalizer: every child is owned through ownerReferences and garbage-collected. This loop keeps the
resync without one: it asks the `Runtime` which resources were last reconciled longer than
`settings.resync_seconds` ago and reconciles those, one after another; a deleted resource is found
gone by its next reconcile and forgotten.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from catalyst_operator.runtime import Runtime

logger = logging.getLogger(__name__)

MAX_TICK_SECONDS: Final = 5.0
"""How often, at most, the loop asks which resources are due (a short period ticks faster)."""


class ResyncLoop:
    """Calls `resync(namespace, name)` for every resource due, until `stop()`."""

    def __init__(self, runtime: Runtime, resync: Callable[[str, str], object]) -> None:
        self.runtime = runtime
        self._resync = resync
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalyst-resync", daemon=True)
        self.tick_seconds = min(MAX_TICK_SECONDS, max(0.2, runtime.settings.resync_seconds / 4))

    def start(self) -> ResyncLoop:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            for namespace, name in self.runtime.due_for_resync_all():
                if self._stop.is_set():
                    return
                try:
                    self._resync(namespace, name)
                except Exception:  # the next tick tries again; one broken resource must not stop the rest
                    logger.exception("resync of %s/%s failed", namespace, name)
