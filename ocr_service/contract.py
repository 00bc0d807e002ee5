"""The service's public contract with everything that deploys it.

The operator's builders, the Helm chart, the compose file, the Dockerfile and `.env.example`
all meet the service here: the port, the probe paths and the names of the environment
variables. This module is standard-library only so that the operator can import it without
pulling in the OCR stack, and tests check every deployment file against it.
"""

from __future__ import annotations

from enum import StrEnum

HTTP_PORT = 8000
"""The port the service listens on inside a container (named `http` in Services)."""

LIVENESS_PATH = "/livez"
READINESS_PATH = "/readyz"
HEALTH_PATH = "/health"
"""Alias of readiness, kept for docker-compose health checks."""
METRICS_PATH = "/metrics"

DEFAULT_IMAGE = "ghcr.io/catalyst-ocr/catalyst-ocr"
"""Image repository; the tag is the package version."""

CONTAINER_DATA_DIR = "/var/lib/catalyst-ocr"
"""Where the image keeps OCR_DATA_DIR (a volume in compose, an emptyDir in Kubernetes)."""

JOB_WORKER_COMMAND = ("python", "-m", "ocr_service.jobs")
"""Runs a worker-only replica (no API; probes and `/metrics` on the HTTP port): the operator's `jobWorkers` pods."""
BACKLOG_METRIC = "ocr_job_backlog_pages"
"""Gauge of job pages queued plus in progress (global): what the job workers' autoscaler reads."""
BACKLOG_SQL = "SELECT count(*) FROM ocr_job_pages WHERE state IN ('queued', 'running')"
"""The same figure counted in the job database (KEDA's postgresql trigger runs it); the store's
`stats()` computes it with the same states, and a test runs this text against a real database."""


class EnvVar(StrEnum):
    """Every environment variable the service reads. `settings.py` reads exactly these."""

    HOST = "OCR_HOST"
    PORT = "OCR_PORT"
    WORKERS = "OCR_WORKERS"
    QUEUE_SIZE = "OCR_QUEUE_SIZE"
    HELPER_THREADS = "OCR_HELPER_THREADS"
    HELPER_QUEUE_SIZE = "OCR_HELPER_QUEUE_SIZE"
    ENGINE = "OCR_ENGINE"
    PAGE_PARALLELISM = "OCR_PAGE_PARALLELISM"
    TIMEOUT_SECONDS = "OCR_TIMEOUT_SECONDS"
    BODY_TIMEOUT_SECONDS = "OCR_BODY_TIMEOUT_SECONDS"
    MIN_UPLOAD_BYTES_PER_SECOND = "OCR_MIN_UPLOAD_BYTES_PER_SECOND"
    MAX_HEADER_BYTES = "OCR_MAX_HEADER_BYTES"
    HEADER_TIMEOUT_SECONDS = "OCR_HEADER_TIMEOUT_SECONDS"
    MAX_UPLOAD_BYTES = "OCR_MAX_UPLOAD_BYTES"
    MAX_PIXELS = "OCR_MAX_PIXELS"
    MAX_PAGES = "OCR_MAX_PAGES"
    PDF_DPI = "OCR_PDF_DPI"
    MAX_DPI = "OCR_MAX_DPI"
    DEFAULT_LANG = "OCR_DEFAULT_LANG"
    DEFAULT_PSM = "OCR_DEFAULT_PSM"
    DEFAULT_OEM = "OCR_DEFAULT_OEM"
    DEFAULT_PREPROCESS = "OCR_DEFAULT_PREPROCESS"
    LANGUAGES = "OCR_LANGUAGES"
    API_KEYS = "OCR_API_KEYS"
    API_KEYS_FILE = "OCR_API_KEYS_FILE"
    DATA_DIR = "OCR_DATA_DIR"
    DATABASE_URL = "OCR_DATABASE_URL"
    REDIS_URL = "OCR_REDIS_URL"
    LOG_LEVEL = "OCR_LOG_LEVEL"
    LOG_FORMAT = "OCR_LOG_FORMAT"
    SHUTDOWN_GRACE_SECONDS = "OCR_SHUTDOWN_GRACE_SECONDS"
    CACHE_TTL_SECONDS = "OCR_CACHE_TTL_SECONDS"
    CACHE_MAX_ENTRIES = "OCR_CACHE_MAX_ENTRIES"
    CACHE_MAX_ENTRY_BYTES = "OCR_CACHE_MAX_ENTRY_BYTES"
    JOB_WORKERS = "OCR_JOB_WORKERS"
    JOB_WORKERS_ENABLED = "OCR_JOB_WORKERS_ENABLED"
    JOB_TTL_SECONDS = "OCR_JOB_TTL_SECONDS"
    JOB_MAX_ATTEMPTS = "OCR_JOB_MAX_ATTEMPTS"
    JOB_LEASE_SECONDS = "OCR_JOB_LEASE_SECONDS"
    JOB_MAX_PAGES = "OCR_JOB_MAX_PAGES"
    JOB_MAX_UPLOAD_BYTES = "OCR_JOB_MAX_UPLOAD_BYTES"
    CALLBACK_SECRET = "OCR_CALLBACK_SECRET"  # noqa: S105 (a variable name, not a secret)
    CALLBACK_ALLOWED_HOSTS = "OCR_CALLBACK_ALLOWED_HOSTS"


SECRET_ENV_VARS = frozenset({EnvVar.API_KEYS, EnvVar.DATABASE_URL, EnvVar.REDIS_URL, EnvVar.CALLBACK_SECRET})
"""Variables that carry credentials: injected from Secrets, never written to ConfigMaps or logs."""
