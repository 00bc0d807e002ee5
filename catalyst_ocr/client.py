"""A small typed client for Catalyst OCR's HTTP API.

It depends only on httpx, never on the server's internals, so in-cluster callers can install it
alone. What it handles so callers do not have to: 429/503 retried honouring `Retry-After` with
jittered back-off inside a total time budget, problem+json turned into a typed exception, the API
key and base URL from the environment (`CATALYST_OCR_API_KEY`, `CATALYST_OCR_URL`), and checking
a completion callback's signature the way the service signs it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

RETRYABLE_STATUSES = frozenset({429, 503})
SIGNATURE_HEADER = "X-Catalyst-Signature"
TIMESTAMP_HEADER = "X-Catalyst-Timestamp"


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


BBox = tuple[int, int, int, int]
"""`(x, y, width, height)` in the pixels of the original page, as the service reports it."""


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float
    bbox: BBox


@dataclass(frozen=True)
class Line:
    text: str
    confidence: float
    bbox: BBox
    words: list[Word]


@dataclass(frozen=True)
class Block:
    text: str
    bbox: BBox
    lines: list[Line]


@dataclass(frozen=True)
class Page:
    number: int
    width: int
    height: int
    text: str
    confidence: float
    blocks: list[Block]
    preprocessing: Any
    timings: dict[str, float]

    @property
    def words(self) -> list[Word]:
        return [word for block in self.blocks for line in block.lines for word in line.words]


@dataclass(frozen=True)
class OcrResult:
    """The JSON format's document, typed; `raw` keeps every member (new ones included)."""

    text: str
    confidence: float
    pages: list[Page]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OcrResult:
        return cls(text=data["text"], confidence=data["confidence"], pages=[_page(p) for p in data["pages"]], raw=data)


def _box(value: list[int]) -> BBox:
    return (int(value[0]), int(value[1]), int(value[2]), int(value[3]))


def _page(data: dict[str, Any]) -> Page:
    blocks = [
        Block(
            text=block["text"],
            bbox=_box(block["bbox"]),
            lines=[
                Line(
                    text=line["text"],
                    confidence=line["confidence"],
                    bbox=_box(line["bbox"]),
                    words=[Word(w["text"], w["confidence"], _box(w["bbox"])) for w in line["words"]],
                )
                for line in block["lines"]
            ],
        )
        for block in data["blocks"]
    ]
    return Page(
        number=data["number"],
        width=data["width"],
        height=data["height"],
        text=data["text"],
        confidence=data["confidence"],
        blocks=blocks,
        preprocessing=data.get("preprocessing"),
        timings=data.get("timings", {}),
    )


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


def retry_delay(response: httpx.Response, attempt: int, *, base: float = 0.2, cap: float = 10.0) -> float:
    """How long to wait before retrying: `Retry-After` when the service says, else jittered back-off.

    Full jitter on top of `Retry-After` spreads a crowd of clients told the same number.
    """
    header = response.headers.get("retry-after", "")
    if header.strip().isdigit():
        return float(header) + random.uniform(0, base)
    return random.uniform(0, min(cap, base * 2**attempt))


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


class Client:
    """A synchronous client. `base_url` and `api_key` default to `CATALYST_OCR_URL` / `CATALYST_OCR_API_KEY`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retry_budget: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = base_url or os.environ.get("CATALYST_OCR_URL")
        if not url:
            raise ValueError("no base URL: pass base_url or set CATALYST_OCR_URL")
        key = api_key if api_key is not None else os.environ.get("CATALYST_OCR_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.retry_budget = retry_budget
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried on 429/503 until the budget is spent; errors raised as `CatalystError`."""
        deadline = time.monotonic() + self.retry_budget
        attempt = 0
        while True:
            response = self._http.request(method, path, **kwargs)
            if response.status_code not in RETRYABLE_STATUSES:
                break
            delay = retry_delay(response, attempt)
            if time.monotonic() + delay > deadline:
                raise error_from_response(response, RetryBudgetExceeded)
            time.sleep(delay)
            attempt += 1
        if response.is_error:
            raise error_from_response(response)
        return response

    def ocr(
        self,
        document: str | Path | bytes,
        *,
        lang: str | None = None,
        format: str = "json",
        pages: str | None = None,
        preprocess: str | None = None,
        psm: int | None = None,
        **options: str | int,
    ) -> OcrResult | bytes:
        """Recognise one document synchronously: an `OcrResult` for JSON, the rendered bytes otherwise."""
        body = document if isinstance(document, bytes) else Path(document).read_bytes()
        params: dict[str, str] = {"format": format}
        for name, value in {"lang": lang, "pages": pages, "preprocess": preprocess, "psm": psm, **options}.items():
            if value is not None:
                params[name] = str(value)
        response = self._send(
            "POST", "/v1/ocr", params=params, content=body, headers={"Content-Type": "application/octet-stream"}
        )
        if format == "json":
            return OcrResult.from_json(response.json())
        return response.content

    def languages(self) -> Any:
        """The service's `/v1/languages` answer, as sent."""
        return self._send("GET", "/v1/languages").json()
