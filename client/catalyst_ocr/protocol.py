"""The protocol rules both clients share, with no I/O: errors, retries, requests, signatures.

`Client` and `AsyncClient` differ only in how they wait and send; everything that decides *what*
to send and *whether* to try again lives here, once.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from catalyst_ocr.models import OcrResult

RETRYABLE_STATUSES = frozenset({429, 503})
SIGNATURE_HEADER = "X-Catalyst-Signature"
TIMESTAMP_HEADER = "X-Catalyst-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
STREAM_READ_TIMEOUT = 45.0
"""Longest silence accepted on an event stream: the service sends a keep-alive every 15 s."""

Document = str | Path | bytes
OptionValue = str | int | bool | Sequence[str] | None


class CatalystError(Exception):
    """A problem+json answer from the service; `type` is stable and safe to branch on."""

    def __init__(self, status: int, type: str, title: str, detail: str, param: str | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.param = param


class RetryBudgetExceeded(CatalystError):
    """The service kept answering 429/503 until the client's total time budget ran out."""


def error_from_response(response: httpx.Response, cls: type[CatalystError] = CatalystError) -> CatalystError:
    """The typed exception for an error answer (a non-problem body still gets one, typed `about:blank`)."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    return cls(
        status=response.status_code,
        type=str(problem.get("type", "about:blank")),
        title=str(problem.get("title", response.reason_phrase)),
        detail=str(problem.get("detail", response.text[:500])),
        param=problem.get("param"),
    )


def retry_delay(response: httpx.Response | None, attempt: int, *, base: float = 0.2, cap: float = 10.0) -> float:
    """How long to wait before retrying: `Retry-After` when the service says, else jittered back-off.

    Jitter on top of `Retry-After` spreads a crowd of clients told the same number.
    """
    header = response.headers.get("retry-after", "") if response is not None else ""
    if header.strip().isdigit():
        return float(header) + random.uniform(0, base)
    return random.uniform(0, min(cap, base * 2**attempt))


def retryable_error(error: Exception) -> bool:
    """Connection failures before or during an answer are worth another try; time-outs are not.

    A time-out means the service is working on it (retrying would start the work again); a refused
    or dropped connection means no answer was had. Submissions carry an Idempotency-Key, so
    retrying them never creates a second job.
    """
    if isinstance(error, httpx.ConnectTimeout):
        return True
    return isinstance(error, httpx.NetworkError | httpx.RemoteProtocolError) and not isinstance(
        error, httpx.TimeoutException
    )


@dataclass
class Attempts:
    """One logical request's retry state: a total time budget and a count for the back-off."""

    budget: float
    deadline: float = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.budget

    def after_response(self, response: httpx.Response) -> float | None:
        """Seconds to wait before another try, or None when `response` is the answer.

        Raises the typed error for a final error answer, or `RetryBudgetExceeded`.
        """
        if response.status_code in RETRYABLE_STATUSES:
            delay = retry_delay(response, self.count)
            if time.monotonic() + delay > self.deadline:
                raise error_from_response(response, RetryBudgetExceeded)
            self.count += 1
            return delay
        if response.is_error:
            raise error_from_response(response)
        return None

    def after_error(self, error: Exception) -> float:
        """Seconds to wait before another try after a transport error; re-raises it otherwise."""
        delay = retry_delay(None, self.count)
        if not retryable_error(error) or time.monotonic() + delay > self.deadline:
            raise error
        self.count += 1
        return delay

    def reset(self) -> None:
        """Progress was made (an event arrived): the budget counts from now."""
        self.count = 0
        self.deadline = time.monotonic() + self.budget


@dataclass(frozen=True)
class Request:
    """What to send; built once, so every retry sends the same bytes and the same key."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for httpx's `request`/`stream`."""
        kwargs: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.content is not None:
            kwargs["content"] = self.content
        if self.files is not None:
            kwargs["files"] = self.files
        return kwargs


def option_params(options: Mapping[str, OptionValue]) -> dict[str, str]:
    """Query parameters for the given options; `lang` may be a list (joined with `+`)."""
    params: dict[str, str] = {}
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, str | int):
            params[name] = str(value)
        else:
            params[name] = "+".join(value)
    return params


def document_body(document: Document) -> tuple[str | None, bytes]:
    """The file name (for paths) and the bytes of a document."""
    if isinstance(document, bytes):
        return None, document
    path = Path(document)
    return path.name, path.read_bytes()


def upload(method: str, path: str, document: Document, params: dict[str, str], headers: dict[str, str]) -> Request:
    """A document upload: multipart when the name is known (the service keeps it), raw bytes otherwise."""
    name, body = document_body(document)
    if name is None:
        return Request(method, path, params, {**headers, "Content-Type": "application/octet-stream"}, content=body)
    return Request(method, path, params, headers, files={"file": (name, body, "application/octet-stream")})


def ocr_request(document: Document, format: str, options: Mapping[str, OptionValue]) -> Request:
    return upload("POST", "/v1/ocr", document, option_params({"format": format, **options}), {})


def submit_request(
    document: Document, format: str, options: Mapping[str, OptionValue], idempotency_key: str | None
) -> Request:
    """A job submission with an Idempotency-Key (a fresh UUID unless given): retries never make two jobs."""
    key = idempotency_key or str(uuid.uuid4())
    return upload("POST", "/v1/jobs", document, option_params({"format": format, **options}), {IDEMPOTENCY_HEADER: key})


def result_request(job_id: str, format: str) -> Request:
    return Request("GET", f"/v1/jobs/{job_id}/result", {"format": format})


def events_request(job_id: str, last_event_id: int | None) -> Request:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return Request("GET", f"/v1/jobs/{job_id}/events", headers=headers)


def decode_result(response: httpx.Response, format: str) -> OcrResult | bytes:
    """`OcrResult` for JSON, the rendered bytes for every other format."""
    if format == "json":
        return OcrResult.from_json(response.json())
    return response.content


def client_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def verify_callback(body: bytes, headers: Mapping[str, str], secret: str, *, max_age: float | None = 300) -> bool:
    """True when a completion callback carries the service's signature for `body`.

    The service signs `timestamp + "." + body` with HMAC-SHA256; `max_age` refuses replays of
    old deliveries (None turns the check off).
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or not signature:
        return False
    if max_age is not None and abs(time.time() - int(timestamp)) > max_age:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), signature)
