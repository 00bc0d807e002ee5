"""Which optional APIs the cluster serves right now (the Prometheus Operator's and KEDA's CRDs, the
External metrics API).

Checked on every reconcile, so ServiceMonitors appear as soon as the CRDs are installed and
stop being applied when they are removed; answers are cached for a few seconds because a burst
of reconciles (200 custom resources at start-up) should cost one discovery request, not 200.
A cluster-wide operator also watches the CRDs themselves: on a change it drops the cache and
waits (briefly) until discovery agrees, so the reconciles that follow see the new answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from catalyst_operator.kube import KubeApi, KubeApiError
from catalyst_operator.resources import KEDA_RESOURCES, MONITORING_RESOURCES, ApiResource, external_metric
from ocr_service.contract import BACKLOG_METRIC


class ApiDiscovery:
    """Cached answers to "does the cluster serve this resource?"."""

    def __init__(self, api: KubeApi, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def served(self, resource: ApiResource) -> bool:
        return resource.plural in self._plurals(resource.group_version_path)

    def monitoring_available(self) -> bool:
        """True when every monitoring kind we may create (ServiceMonitor, PrometheusRule) is served."""
        return all(self.served(resource) for resource in MONITORING_RESOURCES)

    def keda_available(self) -> bool:
        """True when KEDA's ScaledObject and TriggerAuthentication kinds are served."""
        return all(self.served(resource) for resource in KEDA_RESOURCES)

    def backlog_metric_available(self) -> bool:
        """True when the External metrics API (e.g. prometheus-adapter) lists `ocr_job_backlog_pages`."""
        return self.served(external_metric(BACKLOG_METRIC))

    def invalidate(self) -> None:
        """Forget every cached answer: the next question asks the API server."""
        with self._lock:
            self._cache.clear()

    def wait_until(self, resource: ApiResource, *, served: bool, within: float, poll: float = 0.25) -> bool:
        """Ask (uncached) until discovery reports `resource` as `served`; False if it still does not after `within`.

        A CRD's Established condition (or its deletion) can reach a watch a moment before the API
        server's discovery document shows the change; a reconcile in that moment would see the old answer.
        """
        deadline = self._clock() + within
        while True:
            self.invalidate()
            if self.served(resource) is served:
                return True
            if self._clock() >= deadline:
                return False
            time.sleep(poll)

    def _plurals(self, group_version_path: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(group_version_path)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
        try:
            answer = self._api.get(group_version_path) or {}
        except KubeApiError as error:
            if error.status not in (404, 503):
                raise
            answer = {}  # a group being installed or removed answers 503 for a moment
        plurals = frozenset(
            str(entry.get("name")) for entry in answer.get("resources") or [] if isinstance(entry, dict)
        )
        with self._lock:
            self._cache[group_version_path] = (now, plurals)
        return plurals
