"""The HTTP layer itself (issue 10, items 7 and 8), over raw loopback sockets to a real `catalyst-ocr serve`.

Request heads are bounded in bytes and in time, and what the HTTP parser refuses is problem+json
like every other error. Every connection here is bounded: a few KB to a few hundred KB sent, at
most a few seconds waited.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import ServerProcess, serve_process

pytestmark = pytest.mark.xdist_group("service-process")

MAX_HEAD = 8192
HEAD_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "OCR_WORKERS": "1",
        "OCR_DATA_DIR": str(tmp_path_factory.mktemp("protocol")),
        "OCR_MAX_HEADER_BYTES": str(MAX_HEAD),
        "OCR_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
    }
    with serve_process(env) as running:
        yield running


def exchange(server: ServerProcess, chunks: list[bytes], *, pause: float = 0.0, wait: float = 10.0) -> bytes:
    """Send `chunks` (`pause` seconds apart), then read until the server closes (or `wait` passes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed while we were still sending
            if pause:
                time.sleep(pause)
        received = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                break
            if not data:
                break
            received += data
        return received


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict((name.lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines[1:]))
    return status, headers, body


def assert_protocol_problem(raw: bytes, status: int, slug: str) -> dict[str, object]:
    assert raw, "the server closed the connection without an answer"
    got, headers, body = parse(raw)
    assert got == status, raw[:500]
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == status and str(problem["type"]).endswith("/" + slug), problem
    return problem


def get(path: str = "/v1/info", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


def test_a_normal_request_still_works(server: ServerProcess) -> None:
    status, _, _ = parse(exchange(server, [get(extra=b"Connection: close\r\n")]))
    assert status == 200


def test_a_header_past_the_limit_is_431_without_reading_it_all(server: ServerProcess) -> None:
    huge = b"X-Big: " + b"a" * 100_000 + b"\r\n"
    problem = assert_protocol_problem(exchange(server, [get(extra=huge)]), 431, "header-too-large")
    assert str(MAX_HEAD) in str(problem["detail"])
    # A header that never ends is refused too, once the limit has passed (not after the whole of it).
    endless = [b"GET /v1/info HTTP/1.1\r\nX-Big: "] + [b"a" * 4096] * 50
    assert_protocol_problem(exchange(server, endless, pause=0.01), 431, "header-too-large")


def test_many_small_headers_past_the_limit_are_431(server: ServerProcess) -> None:
    many = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 40) for n in range(400))
    assert_protocol_problem(exchange(server, [get(extra=many)]), 431, "header-too-large")


def test_a_url_past_the_limit_is_414(server: ServerProcess) -> None:
    assert_protocol_problem(exchange(server, [get("/v1/info?x=" + "a" * 120_000)]), 414, "uri-too-long")


def test_headers_trickled_in_are_408_after_the_head_timeout(server: ServerProcess) -> None:
    started = time.monotonic()
    trickled = [bytes([byte]) for byte in get()[:-2]]  # never finished
    raw = exchange(server, trickled, pause=0.1, wait=5)
    elapsed = time.monotonic() - started
    assert_protocol_problem(raw, 408, "request-timeout")
    assert elapsed < HEAD_TIMEOUT + 2, elapsed


def test_a_silent_connection_is_closed_after_the_head_timeout(server: ServerProcess) -> None:
    started = time.monotonic()
    assert exchange(server, [], wait=5) == b""
    assert time.monotonic() - started < HEAD_TIMEOUT + 2


def test_a_slow_head_on_a_kept_alive_connection_is_408_too(server: ServerProcess) -> None:
    first = get()
    raw = exchange(server, [first, *[bytes([byte]) for byte in get()[:-2]]], pause=0.1, wait=5)
    assert raw.startswith(b"HTTP/1.1 200")
    assert_protocol_problem(raw[raw.index(b"HTTP/1.1 408") :], 408, "request-timeout")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/ocr HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/ocr HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /v1/ocr HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"FROB /v1/info HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /v1/info HTTP/1.1\r\nHost: t\r\nX-Bad: a\x01b\r\n\r\n",
        b"GET /v1/info HTTP/1.1\r\nHost: t\r\nX Bad: ab\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the plain port
    ],
    ids=["bad-content-length", "content-length-and-chunked", "bad-chunk-size", "unknown-method",
         "control-character-in-header", "space-in-header-name", "tls-on-plain-port"],
)  # fmt: skip
def test_requests_the_parser_refuses_are_400_problem_json(server: ServerProcess, request_bytes: bytes) -> None:
    problem = assert_protocol_problem(exchange(server, [request_bytes]), 400, "invalid-http-request")
    assert str(problem["detail"]).startswith("The request could not be parsed as HTTP/1.1")


def test_protocol_refusals_are_counted(server: ServerProcess, tmp_path: Path) -> None:
    exchange(server, [b"FROB / HTTP/1.1\r\nHost: t\r\n\r\n"])
    _, _, body = parse(exchange(server, [get("/metrics", b"Connection: close\r\n")]))
    assert b'ocr_rejected_requests_total{reason="invalid-http-request",status="400"}' in body
