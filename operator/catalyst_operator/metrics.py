"""The operator's Prometheus metrics, defined once, served on their own port.

A dedicated registry keeps them apart from anything else in the process (and from the OCR
service's metrics when both are imported in one test run).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY: Final = CollectorRegistry(auto_describe=True)

RECONCILES: Final = Counter(
    "catalyst_operator_reconciles",
    "Reconciles of OcrDeployment resources, by result "
    "(ready, progressing, degraded, secret_missing, invalid_spec, error).",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_DURATION: Final = Histogram(
    "catalyst_operator_reconcile_duration_seconds",
    "Wall time of one reconcile, reads and writes included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
CHILDREN_APPLIED: Final = Counter(
    "catalyst_operator_children_applied",
    "Child objects written, by kind and action (created, updated, deleted); unchanged ones are not counted.",
    ["kind", "action"],
    registry=REGISTRY,
)
STATUS_WRITES: Final = Counter(
    "catalyst_operator_status_writes",
    "Status patches of OcrDeployment resources (sent only when the status changed).",
    registry=REGISTRY,
)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Expose /metrics on `port` in a daemon thread (0 = disabled)."""
    if port:
        start_http_server(port, addr=address, registry=REGISTRY)
