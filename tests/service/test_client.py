"""`catalyst_ocr.client` against a real `catalyst-ocr serve` process on loopback (no mocks).

Connection drops are real too: a loopback TCP proxy between client and service cuts chosen
connections mid-answer, the way a restarted pod or a flaky load balancer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import CATALYST_OCR, LINE_ONE, LINE_TWO, has_words, metric_value, multipage, png, serve_process

from catalyst_ocr.client import AsyncClient, CatalystError, Client, OcrResult, verify_callback
from ocr_service.jobs.callbacks import sign

pytestmark = pytest.mark.xdist_group("service-process")

API_KEY = "client-test-key-0123456789"
CALLBACK_SECRET = "client-callback-secret"


def wait_ready(base_url: str) -> None:
    for _ in range(300):  # at most ~30 s
        try:
            if httpx.get(base_url + "/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the service never became ready")


@dataclass
class CallbackReceiver:
    """A loopback HTTP server that records each delivery (body and headers) and answers 204."""

    deliveries: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.deliveries.append((body, dict(self.headers.items())))
                receiver.arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


Cutter = Callable[[bytes], int | None]
"""Given the answer bytes received so far on a chosen connection: None to keep receiving, or how
many of them the client gets before the connection is dropped."""


class CuttingProxy:
    """A loopback TCP proxy that drops connections whose first request `choose` picks.

    `choose(request_head)` returns a `Cutter` for connections to cut, None to pass through.
    Every request head seen is kept, so tests can check what the client sent on its retries.
    """

    def __init__(self, upstream_port: int, choose: Callable[[bytes], Cutter | None]) -> None:
        self.upstream_port = upstream_port
        self.choose = choose
        self.heads: list[bytes] = []
        self.dropped: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=60)
        client.settimeout(60)
        first = client.recv(65536)
        head = first.split(b"\r\n\r\n", 1)[0]
        self.heads.append(head)
        cutter = self.choose(head)
        upstream.sendall(first)
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        answer = b""
        try:
            while chunk := upstream.recv(65536):
                if cutter is None:
                    client.sendall(chunk)
                    continue
                answer += chunk  # held back until the cutter decides
                delivered = cutter(answer)
                if delivered is not None:
                    self.dropped.append(answer)
                    client.sendall(answer[:delivered])
                    break
        except OSError:
            pass
        finally:
            for sock in (client, upstream):  # shutdown, not only close: it wakes the pump blocked in recv
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def drop_whole_answer(data: bytes) -> int | None:
    """Once a Content-Length answer has fully arrived, drop it unseen."""
    head, sep, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return 0 if sep and match and len(body) >= int(match.group(1)) else None


def deliver_first_event(data: bytes) -> int | None:
    """Let the answer through up to the end of its first event, then drop the stream."""
    match = re.search(rb"\nid: \d+\n.*?\n\n", data, re.S)
    return match.end() if match else None


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver) -> Iterator[str]:
    env = {
        "OCR_WORKERS": "1",
        "OCR_DATA_DIR": str(tmp_path_factory.mktemp("client")),
        "OCR_API_KEYS": API_KEY,
        "OCR_CALLBACK_SECRET": CALLBACK_SECRET,
        "OCR_CALLBACK_ALLOWED_HOSTS": receiver.host,
    }
    with serve_process(env) as server:
        wait_ready(server.base_url)
        yield server.base_url


@pytest.fixture
def client(base_url: str) -> Iterator[Client]:
    with Client(base_url, api_key=API_KEY, retry_budget=60) as client:
        yield client


def test_ocr_returns_typed_words_with_the_key_and_url_from_the_environment(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALYST_OCR_URL", base_url)
    monkeypatch.setenv("CATALYST_OCR_API_KEY", API_KEY)
    with Client() as client:
        result = client.ocr(png([LINE_ONE]), lang=["eng"])
    assert isinstance(result, OcrResult)
    assert has_words(result.text, LINE_ONE)
    words = result.pages[0].words
    assert [word.text for word in words] == LINE_ONE.split()
    assert all(0 <= word.confidence <= 100 and word.bbox[2] > 0 and word.bbox[3] > 0 for word in words)


def test_rendered_formats_come_back_as_bytes(client: Client, tmp_path: Path) -> None:
    scan = tmp_path / "scan.png"
    scan.write_bytes(png([LINE_ONE]))
    text = client.ocr(scan, format="text")
    assert isinstance(text, bytes)
    assert has_words(text.decode(), LINE_ONE)


def test_problems_become_typed_exceptions(base_url: str, client: Client) -> None:
    with pytest.raises(CatalystError) as caught:
        client.ocr(png([LINE_ONE]), psm=99)
    assert caught.value.status == 400
    assert caught.value.param == "psm"
    assert caught.value.type.endswith("invalid-parameter")
    with Client(base_url, api_key="wrong-key") as other, pytest.raises(CatalystError) as caught:
        other.languages()
    assert caught.value.status == 401


def test_a_job_is_submitted_followed_and_fetched_in_any_format(client: Client, tmp_path: Path) -> None:
    scan = tmp_path / "two-pages.tiff"
    scan.write_bytes(multipage("TIFF", [[LINE_ONE], [LINE_TWO]]))
    job = client.submit(scan, lang="eng", format="text")
    assert job.info.pages_total == 2 and job.info.raw["filename"] in ("", "two-pages.tiff")
    final = job.wait(timeout=60)
    assert final.status == "succeeded" and final.pages_done == 2
    result = job.result()
    assert isinstance(result, OcrResult) and len(result.pages) == 2
    assert has_words(result.pages[1].text, LINE_TWO)
    text = job.result("text")
    assert isinstance(text, bytes) and has_words(text.decode(), LINE_ONE)
    again = client.job(job.id)
    assert again.info.status == "succeeded"
    assert [event.event for event in again.events()][-1] == "succeeded"
    with pytest.raises(CatalystError) as caught:
        again.cancel()
    assert caught.value.status == 409


def test_a_cancelled_job_ends_cancelled(client: Client) -> None:
    pages = [[f"{LINE_ONE} page {n}"] for n in range(6)]
    job = client.submit(multipage("TIFF", pages), lang="eng")
    assert job.cancel().status == "cancelled"
    assert job.wait(timeout=30).status == "cancelled"
    with pytest.raises(CatalystError) as caught:
        job.result()
    assert caught.value.status == 409


def test_a_submission_retried_after_a_dropped_answer_creates_one_job(base_url: str) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    drop_first_submit: list[bool] = []

    def choose(head: bytes) -> Cutter | None:
        if head.startswith(b"POST /v1/jobs") and not drop_first_submit:
            drop_first_submit.append(True)
            return drop_whole_answer
        return None

    proxy = CuttingProxy(port, choose)
    try:
        with Client(proxy.base_url, api_key=API_KEY, retry_budget=30) as client:
            job = client.submit(png([LINE_ONE]), lang="eng")
            assert job.wait(timeout=60).status == "succeeded"
    finally:
        proxy.close()
    (dropped,) = proxy.dropped
    assert b" 202 " in dropped.split(b"\r\n", 1)[0], "the first answer was a created job, never seen by the client"
    first_id = json.loads(dropped.partition(b"\r\n\r\n")[2])["id"]
    assert job.id == first_id, "the retry got the same job back, not a second one"
    submissions = [head for head in proxy.heads if head.startswith(b"POST /v1/jobs")]
    keys = {re.search(rb"(?i)idempotency-key: (\S+)", head).group(1) for head in submissions}  # type: ignore[union-attr]
    assert len(submissions) == 2 and len(keys) == 1, "both tries carried one Idempotency-Key"


def test_an_event_stream_cut_mid_way_resumes_after_the_last_event(client: Client, base_url: str) -> None:
    job = client.submit(multipage("TIFF", [[LINE_ONE], [LINE_TWO], [LINE_ONE]]), lang="eng")
    job.wait(timeout=60)
    port = int(base_url.rsplit(":", 1)[1])
    cut_once: list[bool] = []

    def choose(head: bytes) -> Cutter | None:
        if b"/events" in head and not cut_once:
            cut_once.append(True)
            return deliver_first_event
        return None

    proxy = CuttingProxy(port, choose)
    try:
        one_request_per_connection = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        with Client(proxy.base_url, api_key=API_KEY, retry_budget=30, transport=one_request_per_connection) as resuming:
            events = list(resuming.job(job.id).events())
    finally:
        proxy.close()
    ids = [event.id for event in events]
    assert ids == sorted(set(ids)), "no event twice, none out of order"
    assert events[-1].event == "succeeded"
    assert [event.event for event in events].count("progress") == 3
    streams = [head for head in proxy.heads if b"/events" in head]
    assert len(streams) == 2, "the cut stream was opened again"
    assert f"last-event-id: {ids[0]}".encode() in streams[1].lower()


def test_a_429_storm_on_a_one_worker_service_still_answers_every_request(tmp_path: Path) -> None:
    env = {"OCR_WORKERS": "1", "OCR_QUEUE_SIZE": "1", "OCR_DATA_DIR": str(tmp_path), "OCR_RESULT_CACHE": "off"}
    callers, per_caller = 6, 2
    with serve_process(env) as server:
        wait_ready(server.base_url)

        def caller(n: int) -> list[str]:
            with Client(server.base_url, retry_budget=120) as client:
                texts = []
                for m in range(per_caller):
                    result = client.ocr(png([f"{LINE_ONE} {n}{m}"]), format="text")
                    assert isinstance(result, bytes)
                    texts.append(result.decode())
                return texts

        with ThreadPoolExecutor(callers) as pool:
            answers = [text for texts in pool.map(caller, range(callers)) for text in texts]
        metrics = httpx.get(server.base_url + "/metrics").text
    assert len(answers) == callers * per_caller
    assert all(has_words(text, LINE_ONE) for text in answers)
    assert metric_value(metrics, "ocr_rejected_requests_total", status="429") > 0, "the service did refuse some"


def test_the_async_client_does_the_same(base_url: str) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        async with AsyncClient(base_url, api_key=API_KEY, retry_budget=60) as client:
            sync_result = await client.ocr(png([LINE_ONE]), lang="eng")
            job = await client.submit(png([LINE_TWO]), lang="eng")
            events = [event.event async for event in job.events()]
            final = await job.wait(timeout=30)
            return sync_result, (events, final), await job.result("text")

    sync_result, (events, final), text = asyncio.run(scenario())
    assert isinstance(sync_result, OcrResult) and has_words(sync_result.text, LINE_ONE)
    assert events[-1] == "succeeded" and final.status == "succeeded"
    assert isinstance(text, bytes) and has_words(text.decode(), LINE_TWO)


def test_a_real_callback_verifies(client: Client, receiver: CallbackReceiver) -> None:
    receiver.arrived.clear()
    job = client.submit(png([LINE_ONE]), lang="eng", callback_url=f"http://{receiver.host}/hook")
    job.wait(timeout=60)
    assert receiver.arrived.wait(30), "the callback was delivered"
    body, headers = receiver.deliveries[-1]
    assert json.loads(body)["job"]["id"] == job.id
    assert verify_callback(body, headers, CALLBACK_SECRET)
    assert not verify_callback(body, headers, "another-secret")
    assert not verify_callback(body + b" ", headers, CALLBACK_SECRET)


def test_verify_callback_refuses_tampering_and_replays() -> None:
    body = b'{"event":"job.finished","job":{"id":"x"}}'
    timestamp = str(int(time.time()))
    headers = {"X-Catalyst-Timestamp": timestamp, "X-Catalyst-Signature": sign("s3cret", timestamp, body)}
    assert verify_callback(body, headers, "s3cret")
    assert not verify_callback(body + b" ", headers, "s3cret")
    assert not verify_callback(body, headers, "other")
    old = str(int(time.time()) - 3600)
    assert not verify_callback(body, {**headers, "X-Catalyst-Timestamp": old}, "s3cret")


def test_the_cli_sends_files_to_a_remote_service_with_url(base_url: str, tmp_path: Path) -> None:
    scan = tmp_path / "scan.png"
    scan.write_bytes(png([LINE_ONE]))
    env = {**os.environ, "CATALYST_OCR_API_KEY": API_KEY, "OCR_WORKERS": "1"}
    done = subprocess.run(
        [str(CATALYST_OCR), "ocr", "--url", base_url, "--format", "json", "--lang", "eng", str(scan), str(scan)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["source"] for line in lines] == [str(scan), str(scan)]
    assert all(has_words(line["text"], LINE_ONE) for line in lines)

    refused = subprocess.run(
        [str(CATALYST_OCR), "ocr", "--psm", "99", str(scan)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "CATALYST_OCR_URL": base_url},
        check=False,
    )
    assert refused.returncode == 1
    assert f"{scan}: Invalid parameter" in refused.stderr and "psm" in refused.stderr
