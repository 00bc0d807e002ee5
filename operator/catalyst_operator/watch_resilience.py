"""A watched kind whose CRD is removed must not stop the operator.

kopf watches every kind the operator has handlers for, our optional children included
(ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication: their CRDs come and go with
the Prometheus Operator and KEDA) and the OcrDeployment CRD itself. When a CRD is deleted, the API
server ends its watches; kopf re-lists at once, the list answers 404, and kopf 1.45 lets that
`APINotFoundError` escape its watcher, which stops the whole operator (seen in a CI run of the
end-to-end test that removes the monitoring CRDs, which usually wins that race). kopf's own resource
observer does stop the watcher once discovery no longer lists the kind, but only after that
re-list has already raised.

So a stream that meets a 404 ends quietly instead, and kopf's infinite watch starts it again after
`RETRY_SECONDS`: until the observer cancels the watcher (the kind is gone for good) or the CRD is
back (the re-list then succeeds, as after any reconnect). Nothing is lost: every reconnect re-lists.

kopf has no public hook for this, so `install()` wraps its `watching.continuous_watch`, the one
function `infinite_watch` calls per stream. It checks that the private names it needs exist and
fails loudly at start-up if a kopf upgrade moved them (the lock pins kopf; tests cover both the
wrapper and the end-to-end path).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching as kopf_watching

logger = logging.getLogger(__name__)

RETRY_SECONDS: Final = 5.0
"""Wait before listing a kind again after a 404: its CRD is gone, or not yet back."""

_MARK: Final = "_catalyst_tolerates_removed_kinds"


def tolerate_removed_kinds(
    continuous_watch: Callable[..., AsyncIterator[Any]], retry_seconds: float = RETRY_SECONDS
) -> Callable[..., AsyncIterator[Any]]:
    """`continuous_watch`, except that a 404 (the kind is not served) ends the stream after a pause."""

    not_served: set[str] = set()  # kinds whose last list was a 404: logged once, not every retry

    async def continuous_watch_tolerating_removal(**kwargs: Any) -> AsyncIterator[Any]:
        kind = str(kwargs.get("resource"))
        try:
            async for event in continuous_watch(**kwargs):
                if kind in not_served:
                    not_served.discard(kind)
                    logger.info("%s is served again", kind)
                yield event
        except kopf_errors.APINotFoundError:
            if kind not in not_served:
                not_served.add(kind)
                logger.info("%s is not served (its CRD was removed?): listing it every %.0f s", kind, retry_seconds)
            await asyncio.sleep(retry_seconds)

    setattr(continuous_watch_tolerating_removal, _MARK, True)
    return continuous_watch_tolerating_removal


def install() -> None:
    """Wrap kopf's per-stream watch once (idempotent: the handlers module may be imported again)."""
    original = getattr(kopf_watching, "continuous_watch", None)
    if original is None or not hasattr(kopf_errors, "APINotFoundError"):
        raise RuntimeError("kopf moved watching.continuous_watch or APINotFoundError: update watch_resilience")
    if getattr(original, _MARK, False):
        return
    kopf_watching.continuous_watch = tolerate_removed_kinds(original)
