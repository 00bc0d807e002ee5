"""The HTTP/1.1 connection itself: bounded request heads and problem+json for protocol errors.

uvicorn's httptools protocol (the fast one `serve` uses) puts no limit on the size of a request's
line and headers, and starts no timer until a first response was sent: a 200 MB header was read
in full (+390 MB RSS), and a client trickling header bytes held its connection for ever. It also
answers every parse error with `400 text/plain "Invalid HTTP request received."`. This subclass
of it, passed to uvicorn as its `http` protocol, adds three things and changes nothing else:

- the request line and headers may hold `OCR_MAX_HEADER_BYTES` in all: past it the answer is
  414 `uri-too-long` (the URL alone is too long) or 431 `header-too-large`, and the connection
  closes. Bytes are counted as they arrive, so a header that never ends is refused once the
  limit is passed (memory: the limit plus one read), and exactly once the head is parsed.
- the head must be complete within `OCR_HEADER_TIMEOUT_SECONDS` of the connection opening or of
  its first byte (keep-alive connections: uvicorn's own idle timer runs between requests):
  past it the answer is 408 `request-timeout` (a silent connection is just closed).
- a request httptools cannot parse (bad Content-Length, both Content-Length and
  Transfer-Encoding, a bad chunk size, an unknown method, a control character in a header,
  ...) is 400 `invalid-http-request` as problem+json, naming the parser's reason.

Each of these answers is counted in `ocr_rejected_requests_total` like every other refusal.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ocr_service import metrics
from ocr_service.errors import OcrError
from ocr_service.http.problems import PROBLEM_MEDIA_TYPE
from ocr_service.settings import Settings


class InvalidHttpRequest(OcrError):
    status, slug, title = 400, "invalid-http-request", "The request is not valid HTTP/1.1"


class HeadTimeout(OcrError):
    status, slug, title = 408, "request-timeout", "The request headers arrived too slowly"


class UriTooLong(OcrError):
    status, slug, title = 414, "uri-too-long", "Request URL too long"


class HeaderTooLarge(OcrError):
    status, slug, title = 431, "header-too-large", "Request header fields too large"


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head that passed the limit."""


STATUS_TEXT = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring; `max_head_bytes` and `head_timeout` are set by `guarded_protocol`."""

    max_head_bytes = 65536
    head_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_received = 0  # bytes read while the current head was incomplete
        self._head_parsed = 0  # bytes of URL and headers the parser has handed over
        self._url_too_long = False
        self._head_timer: asyncio.TimerHandle | None = None

    # -- the connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._in_head:
            if self._head_timer is None:
                self._arm_head_timer()
            if self._head_received > self.max_head_bytes:  # still no end of head after the limit
                self._refuse(self._too_large())
                return
            self._head_received += len(data)
        try:
            self.parser.feed_data(data)
        except _HeadTooLarge:
            self._refuse(self._too_large())
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(self._too_large())
            else:
                reason = str(exc).strip() or type(exc).__name__
                self._refuse(InvalidHttpRequest(f"The request could not be parsed as HTTP/1.1: {reason}."))

    # -- parser callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_parsed = 0
        self._url_too_long = False
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.max_head_bytes:
            self._url_too_long = True
            raise _HeadTooLarge
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_received = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what arrives next is the head of the next request

    def send_400_response(self, msg: str) -> None:
        """uvicorn's own 400 (from paths this class does not override) as problem+json too."""
        self._refuse(InvalidHttpRequest(msg))

    # -- internals ------------------------------------------------------------------------------

    def _count(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > self.max_head_bytes:
            raise _HeadTooLarge

    def _too_large(self) -> OcrError:
        if self._url_too_long:
            return UriTooLong(f"The request URL is longer than {self.max_head_bytes} bytes.")
        return HeaderTooLarge(f"The request line and headers exceed {self.max_head_bytes} bytes.")

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._head_received == 0:
            self.transport.close()  # nothing was sent: nobody to answer
            return
        self._refuse(HeadTimeout(f"The request line and headers were not complete within {self.head_timeout:g} s."))

    def _refuse(self, error: OcrError) -> None:
        """Answer `error` as problem+json on the raw connection, then close it (the request never reached the app)."""
        self._disarm_head_timer()
        metrics.REJECTED_REQUESTS.labels(reason=error.slug, status=str(error.status)).inc()
        self.logger.info("refused at the HTTP layer: %s %s", error.status, error.detail)
        if self.transport.is_closing():
            return
        body = json.dumps(error.to_problem(), separators=(",", ":")).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (error.status, STATUS_TEXT.get(error.status, b"Error"))]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` with this service's limits."""
    return type(
        "CatalystHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_head_bytes": settings.max_header_bytes, "head_timeout": settings.header_timeout_seconds},
    )
