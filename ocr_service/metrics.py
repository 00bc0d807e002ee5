"""Every Prometheus metric the service exports, defined once.

Metric objects live in this module's own `REGISTRY` (plus the process collector for memory
and CPU), so `/metrics` shows exactly the service's series. Labels are bounded: routes are
templates (`/v1/jobs/{job_id}`, never raw paths), rejection reasons are problem slugs.
Gauges that mirror the engine pool are set from `pipeline.stats()` when scraped
(`refresh_pool_gauges`), so they cannot drift from the truth.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from ocr_service.contract import BACKLOG_METRIC

disable_created_metrics()  # type: ignore[no-untyped-call]
"""No `*_created` series: a timestamp per counter and histogram that doubles the exposition and that
no dashboard or alert here reads (prometheus_client's switch is process-wide, set once on import)."""

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

EXPOSITION_MEDIA_TYPE = CONTENT_TYPE_LATEST
UNMATCHED_ROUTE = "<unmatched>"
"""Route label of requests no route matched (one series for every unknown path)."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# --- HTTP --------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "ocr_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "ocr_http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge("ocr_http_requests_in_flight", "HTTP requests being handled now.", registry=REGISTRY)
REJECTED_REQUESTS = Counter(
    "ocr_rejected_requests",
    "Requests answered with an error, by problem type slug (e.g. payload-too-large, overloaded, timeout).",
    ["reason", "status"],
    registry=REGISTRY,
)

# --- Recognition -------------------------------------------------------------------------------

RECOGNITION_DURATION = Histogram(
    "ocr_recognition_duration_seconds",
    "Time to recognise one document (decode, preprocess, recognise, render), by output format.",
    ["format"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
PAGES_RECOGNIZED = Counter("ocr_pages_recognized", "Pages recognised.", registry=REGISTRY)
RECOGNITION_CONFIDENCE = Histogram(
    "ocr_recognition_confidence",
    "Mean word confidence (0-100) of each recognised page.",
    buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
    registry=REGISTRY,
)

# --- Engine pool (set at scrape time from pipeline.stats()) ------------------------------------

POOL_WORKERS = Gauge("ocr_pool_workers", "Recognitions the engine pool runs at once.", registry=REGISTRY)
POOL_BUSY = Gauge("ocr_pool_busy_workers", "Workers recognising a page now.", registry=REGISTRY)
POOL_QUEUED = Gauge("ocr_pool_queued", "Pages waiting for a worker.", registry=REGISTRY)
POOL_QUEUE_CAPACITY = Gauge(
    "ocr_pool_queue_capacity", "Pages that may wait before requests get 429.", registry=REGISTRY
)

# --- Jobs and cache (defined by the jobs work, below this line) --------------------------------

JOBS = Gauge(
    "ocr_jobs",
    "Jobs in the job store by state (the store's global figure: take max(), not sum(), across replicas).",
    ["state"],
    registry=REGISTRY,
)
JOB_QUEUE_DEPTH = Gauge("ocr_job_queue_depth", "Job pages waiting for a worker (all replicas).", registry=REGISTRY)
JOB_OLDEST_QUEUED_AGE = Gauge(
    "ocr_job_oldest_queued_page_age_seconds", "How long the oldest queued job page has waited.", registry=REGISTRY
)
JOB_PAGES_IN_PROGRESS = Gauge(
    "ocr_job_pages_in_progress",
    "Job pages claimed by a worker right now, on any replica (the store's global figure).",
    registry=REGISTRY,
)
JOB_BACKLOG = Gauge(
    BACKLOG_METRIC,
    "Job pages queued plus in progress, on any replica: what the job workers' autoscaler scales on.",
    registry=REGISTRY,
)
JOB_WORKER_CAPACITY = Gauge(
    "ocr_job_worker_capacity",
    "Job pages this replica recognises at once (0: it claims none, OCR_JOB_WORKERS_ENABLED=false).",
    registry=REGISTRY,
)
JOB_PAGES = Counter(
    "ocr_job_pages",
    "Job pages this replica finished, by outcome (done, cached, retried, failed, released: handed back on shutdown).",
    ["outcome"],
    registry=REGISTRY,
)
JOB_LEASE_EXPIRATIONS = Counter(
    "ocr_job_lease_expirations", "Pages reclaimed from a worker that stopped renewing its lease.", registry=REGISTRY
)
JOB_RETRIES = Counter("ocr_job_page_retries", "Job pages put back in the queue for another attempt.", registry=REGISTRY)
JOB_CALLBACKS = Counter(
    "ocr_job_callbacks",
    "Completion callback attempts by outcome (delivered, retry, failed, refused, error).",
    ["outcome"],
    registry=REGISTRY,
)
JOB_CALLBACK_DISPATCHER_UP = Gauge(
    "ocr_job_callback_dispatcher_up",
    "1 while every callback dispatcher task of this replica runs; 0 once one ended on its own (an outage).",
    registry=REGISTRY,
)
JOB_STORE_ERRORS = Counter(
    "ocr_job_store_errors", "Job store operations that failed because the database was unreachable.", registry=REGISTRY
)
JOB_CHANGE_FEED_CONNECTED = Gauge(
    "ocr_job_change_feed_connected",
    "1 while this replica's PostgreSQL LISTEN connection for job changes is up (0: it falls back to fast polling).",
    registry=REGISTRY,
)
JOB_CHANGE_FEED_RECONNECTS = Counter(
    "ocr_job_change_feed_reconnects",
    "Times the job change feed's LISTEN connection came back after it was lost.",
    registry=REGISTRY,
)
CACHE_LOOKUPS = Counter(
    "ocr_cache_lookups", "Result cache lookups by result (hit, miss).", ["result"], registry=REGISTRY
)
CACHE_ERRORS = Counter(
    "ocr_cache_errors",
    "Result cache operations that failed (Redis unreachable), by operation.",
    ["operation"],
    registry=REGISTRY,
)
CACHE_SKIPPED = Counter(
    "ocr_cache_skipped_entries", "Results not cached because they exceed OCR_CACHE_MAX_ENTRY_BYTES.", registry=REGISTRY
)


# --- Bound series for the per-request hot path --------------------------------------------------
#
# `metric.labels(...)` validates and looks up its labels under a lock on every call; the series a
# request touches are few and fixed, so each is bound once and reused (a few microseconds less
# on the event loop per request). The label sets are bounded: route templates, known methods,
# status codes and output formats.

_HTTP_SERIES: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
_RECOGNITION_SERIES: dict[str, Histogram] = {}


def http_request_series(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    """The request counter and the duration histogram of one route template, method and status."""
    key = (route, method, status)
    series = _HTTP_SERIES.get(key)
    if series is None:
        series = _HTTP_SERIES[key] = (
            HTTP_REQUESTS.labels(route=route, method=method, status=str(status)),
            HTTP_REQUEST_DURATION.labels(route=route, method=method),
        )
    return series


def recognition_duration_series(output_format: str) -> Histogram:
    """The recognition-duration histogram of one output format."""
    series = _RECOGNITION_SERIES.get(output_format)
    if series is None:
        series = _RECOGNITION_SERIES[output_format] = RECOGNITION_DURATION.labels(format=output_format)
    return series


def refresh_pool_gauges(*, workers: int, busy: int, queued: int, queue_capacity: int) -> None:
    """Mirror the pool's current state into the gauges just before an exposition."""
    POOL_WORKERS.set(workers)
    POOL_BUSY.set(busy)
    POOL_QUEUED.set(queued)
    POOL_QUEUE_CAPACITY.set(queue_capacity)


def exposition() -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(REGISTRY)
