"""`catalyst_ocr.client` against a real `catalyst-ocr serve` process on loopback (no mocks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_support import LINE_ONE, has_words, png, serve_process

from catalyst_ocr.client import CatalystError, Client, OcrResult, verify_callback
from ocr_service.jobs.callbacks import sign

pytestmark = pytest.mark.xdist_group("service-process")

API_KEY = "client-test-key-0123456789"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"OCR_WORKERS": "1", "OCR_DATA_DIR": str(tmp_path_factory.mktemp("client")), "OCR_API_KEYS": API_KEY}
    with serve_process(env) as server:
        for _ in range(300):  # at most ~30 s
            try:
                if httpx.get(server.base_url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield server.base_url


def test_ocr_returns_typed_words_with_the_key_and_url_from_the_environment(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALYST_OCR_URL", base_url)
    monkeypatch.setenv("CATALYST_OCR_API_KEY", API_KEY)
    with Client() as client:
        result = client.ocr(png([LINE_ONE]), lang="eng")
    assert isinstance(result, OcrResult)
    assert has_words(result.text, LINE_ONE)
    words = result.pages[0].words
    assert [word.text for word in words] == LINE_ONE.split()
    assert all(0 <= word.confidence <= 100 and word.bbox[2] > 0 and word.bbox[3] > 0 for word in words)


def test_rendered_formats_come_back_as_bytes(base_url: str, tmp_path: Path) -> None:
    scan = tmp_path / "scan.png"
    scan.write_bytes(png([LINE_ONE]))
    with Client(base_url, api_key=API_KEY) as client:
        text = client.ocr(scan, format="text")
    assert isinstance(text, bytes)
    assert has_words(text.decode(), LINE_ONE)


def test_problems_become_typed_exceptions(base_url: str) -> None:
    with Client(base_url, api_key=API_KEY) as client, pytest.raises(CatalystError) as caught:
        client.ocr(png([LINE_ONE]), psm=99)
    assert caught.value.status == 400
    assert caught.value.param == "psm"
    assert caught.value.type.endswith("invalid-parameter")
    with Client(base_url, api_key="wrong-key") as client, pytest.raises(CatalystError) as caught:
        client.languages()
    assert caught.value.status == 401


def test_verify_callback_accepts_the_service_signature_and_refuses_tampering() -> None:
    body = b'{"event":"job.finished","job":{"id":"x"}}'
    timestamp = str(int(time.time()))
    headers = {"X-Catalyst-Timestamp": timestamp, "X-Catalyst-Signature": sign("s3cret", timestamp, body)}
    assert verify_callback(body, headers, "s3cret")
    assert not verify_callback(body + b" ", headers, "s3cret")
    assert not verify_callback(body, headers, "other")
    old = str(int(time.time()) - 3600)
    assert not verify_callback(body, {**headers, "X-Catalyst-Timestamp": old}, "s3cret")
