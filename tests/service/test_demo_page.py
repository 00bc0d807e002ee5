"""The demo page (`GET /demo`) in a real headless browser against a real `catalyst-ocr serve`.

Debian's `chromium` (installed by `scripts/install-system-deps.sh --dev`) is driven by
Playwright from PyPI; Playwright never downloads a browser of its own. Every wait is bounded
(`WAIT_MS`), and the page may talk to nothing but the service (checked on every request).

Set `DEMO_SCREENSHOT=docs/demo.png` to refresh the README's screenshot; otherwise the test
writes its screenshot to its temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, expect, sync_playwright
from service_support import LINE_ONE, LINE_TWO, REPO_ROOT, has_words, multipage, serve_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CORPUS = REPO_ROOT.parent / "shared" / "ocr-corpus"
SCAN = CORPUS / "phototest.tif"
WAIT_MS = 60_000
API_KEY = "demo-key-5f2c9a"
KEY_STORAGE = "catalyst-ocr.api-key"
DEFAULT_OPTIONS = {"lang": "eng", "psm": "3", "preprocess": "auto"}

pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("demo-browser")]  # one server, one browser


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "install Debian's chromium: scripts/install-system-deps.sh --dev"
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"OCR_WORKERS": "2", "OCR_DATA_DIR": str(tmp_path_factory.mktemp("demo")), "OCR_TIMEOUT_SECONDS": "60"}
    with serve_process(env) as running:
        yield running.base_url


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"OCR_WORKERS": "1", "OCR_DATA_DIR": str(tmp_path_factory.mktemp("demo-keys")), "OCR_API_KEYS": API_KEY}
    with serve_process(env) as running:
        yield running.base_url


class Watched:
    """A page whose console errors and requests are recorded: nothing may leave the service's origin."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.errors: list[str] = []
        self.foreign: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _request(self, request: Request) -> None:
        if not request.url.startswith((self.origin + "/", "blob:", "data:")):
            self.foreign.append(request.url)

    def check_clean(self, *, allowed_errors: tuple[str, ...] = ()) -> None:
        unexpected = [e for e in self.errors if not any(allowed in e for allowed in allowed_errors)]
        assert unexpected == [], unexpected  # CSP violations and script errors land here
        assert self.foreign == []


@pytest.fixture
def demo(browser: Browser, server: str) -> Iterator[Watched]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1360, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watched = Watched(page, server)
    page.goto(f"{server}/demo")
    expect(page.locator("#languages input[value=eng]")).to_be_checked()
    yield watched
    context.close()


def api_result(base_url: str, path: Path, **options: str) -> Any:
    with path.open("rb") as handle:
        response = httpx.post(
            f"{base_url}/v1/ocr", params={**options, "format": "json"}, files={"file": handle}, timeout=120
        )
    response.raise_for_status()
    return response.json()


def test_a_scan_shows_the_json_apis_text_and_word_boxes(demo: Watched, server: str, tmp_path: Path) -> None:
    page = demo.page
    page.set_input_files("#file", SCAN)
    expect(page.locator("#status")).to_contain_text("Recognised 1 page(s)")

    expected = api_result(server, SCAN, **DEFAULT_OPTIONS)["pages"][0]
    words = [word for block in expected["blocks"] for line in block["lines"] for word in line["words"]]
    assert len(words) > 20
    assert page.locator("#text").text_content() == expected["text"]
    assert page.locator("#boxes rect.word").count() == len(words)
    assert page.locator("#boxes rect.line").count() == sum(len(b["lines"]) for b in expected["blocks"])
    assert page.locator("#boxes rect.block").count() == len(expected["blocks"])
    assert page.locator("#boxes").get_attribute("viewBox") == f"0 0 {expected['width']} {expected['height']}"
    # The TIFF was drawn from the preview endpoint at the page's own size (640x480 is under the cap).
    assert page.evaluate(
        "[document.getElementById('page-image').width, document.getElementById('page-image').height]"
    ) == [
        expected["width"],
        expected["height"],
    ]

    first = page.locator("#boxes rect.word").first
    first.hover()
    expect(page.locator("#hover-info")).to_contain_text(f"word “{words[0]['text']}”: confidence")
    assert first.get_attribute("stroke", timeout=1000) is not None  # coloured by confidence
    steps = page.locator("#steps tbody tr")
    assert steps.count() == len(expected["preprocessing"]["steps"])
    expect(page.locator("#timings tbody")).to_contain_text("document")

    screenshot = Path(os.environ.get("DEMO_SCREENSHOT") or tmp_path / "demo.png")
    page.screenshot(path=str(screenshot), full_page=False)
    assert screenshot.stat().st_size > 10_000
    demo.check_clean()


def test_a_dropped_rotated_scan_gets_boxes_on_the_original_page(demo: Watched, server: str) -> None:
    """Drag and drop works, and `auto` turning the page upright still maps boxes onto the page as sent."""
    scan = CORPUS / "phototest-rotated-L.png"
    expected = api_result(server, scan, **DEFAULT_OPTIONS)["pages"][0]
    page = demo.page
    payload = list(scan.read_bytes())
    transfer = page.evaluate_handle(
        """([bytes, name]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
            return transfer;
        }""",
        [payload, scan.name],
    )
    page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    expect(page.locator("#drop")).to_have_class("over")
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    expect(page.locator("#status")).to_contain_text("Recognised 1 page(s)")
    assert page.locator("#file-name").text_content() == scan.name
    assert page.locator("#text").text_content() == expected["text"]
    assert page.locator("#boxes").get_attribute("viewBox") == f"0 0 {expected['width']} {expected['height']}"
    assert expected["height"] > expected["width"]  # the page as sent is on its side
    ran = [row.split("\t")[:2] for row in page.locator("#steps tbody tr").all_inner_texts()]
    assert ["orientation", "yes"] in ran
    assert page.locator("#boxes rect.word").count() == sum(
        len(line["words"]) for block in expected["blocks"] for line in block["lines"]
    )
    demo.check_clean()


def test_downloads_and_copied_requests_work_as_given(demo: Watched, server: str, tmp_path: Path) -> None:
    page = demo.page
    page.set_input_files("#file", SCAN)
    expect(page.locator("#status")).to_contain_text("Recognised 1 page(s)")
    expected_text = api_result(server, SCAN, **DEFAULT_OPTIONS)["text"]

    for fmt, extension, magic in [("text", "txt", b""), ("pdf", "pdf", b"%PDF"), ("alto", "alto.xml", b"<?xml")]:
        with page.expect_download() as download:
            page.click(f"#downloads button[data-format={fmt}]")
        assert download.value.suggested_filename == f"phototest.{extension}"
        body = Path(download.value.path()).read_bytes()
        if fmt == "text":
            assert has_words(body.decode(), "This is a lot of 12 point text")
        else:
            assert body.startswith(magic)

    page.click("#copy-curl")
    expect(page.locator("#copy-status")).to_have_text("Copied as curl.")
    curl = page.evaluate("navigator.clipboard.readText()")
    assert curl == page.locator("#snippet").input_value()
    assert curl.startswith("curl -F file=@'phototest.tif' ")
    ran = subprocess.run(["sh", "-c", curl], cwd=CORPUS, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(ran.stdout)["text"] == expected_text

    page.click("#copy-python")
    python = page.evaluate("navigator.clipboard.readText()")
    assert "from catalyst_ocr.client import Client" in python
    assert 'client.ocr("phototest.tif", psm=3, preprocess="auto", lang="eng")' in python
    ran = subprocess.run([sys.executable, "-c", python], cwd=CORPUS, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.rstrip("\n") == expected_text.rstrip("\n")
    demo.check_clean()


def test_a_three_page_pdf_runs_as_a_job_with_progress(demo: Watched, tmp_path: Path) -> None:
    pages = [[LINE_ONE], [LINE_TWO], ["Third page of the job"]]
    pdf = tmp_path / "three-pages.pdf"
    pdf.write_bytes(multipage("PDF", pages))
    page = demo.page
    page.evaluate(
        """() => {
            window.progressSeen = [];
            new MutationObserver(() => window.progressSeen.push(document.getElementById('job-status').textContent))
                .observe(document.getElementById('job-status'), {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.set_input_files("#file", pdf)
    expect(page.locator("#status")).to_contain_text("Recognised 3 page(s)")

    seen: list[str] = page.evaluate("window.progressSeen")
    assert seen[0] == "queued: 0 of 3 pages"
    assert any(text.startswith("progress: ") for text in seen), seen
    assert seen[-1] == "succeeded: 3 of 3 pages"
    assert page.locator("#job-progress").evaluate("bar => [bar.value, bar.max]") == [3, 3]

    assert page.locator("#page-label").text_content() == "Page 1 (1 of 3)"
    assert has_words(page.locator("#text").text_content() or "", LINE_ONE)
    assert page.locator("#boxes rect.word").count() == len(LINE_ONE.split())
    page.click("#next")
    expect(page.locator("#page-label")).to_have_text("Page 2 (2 of 3)")
    assert has_words(page.locator("#text").text_content() or "", LINE_TWO)
    page.click("#next")
    expect(page.locator("#page-label")).to_have_text("Page 3 (3 of 3)")
    assert page.locator("#next").is_disabled()
    assert "v1/jobs" in page.locator("#snippet").input_value()

    page.click("#copy-python")
    python = page.evaluate("navigator.clipboard.readText()")
    assert 'job = client.submit("three-pages.pdf", psm=3, preprocess="auto", lang="eng")' in python
    ran = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, ran.stderr
    for lines in pages:
        assert has_words(ran.stdout, lines[0])

    page.set_input_files("#file", SCAN)  # a one-page document next: the job's progress goes away
    expect(page.locator("#status")).to_contain_text("Recognised 1 page(s)")
    assert page.locator("#job").is_hidden()
    demo.check_clean()


def test_a_two_page_tiff_is_recognised_synchronously_with_page_navigation(demo: Watched, tmp_path: Path) -> None:
    tiff = tmp_path / "two-pages.tiff"
    tiff.write_bytes(multipage("TIFF", [[LINE_ONE], [LINE_TWO, LINE_ONE]]))
    page = demo.page
    with page.expect_request(lambda request: request.url.split("?")[0].endswith("/v1/ocr")):
        page.set_input_files("#file", tiff)
    expect(page.locator("#status")).to_contain_text("Recognised 2 page(s)")
    assert page.locator("#job").is_hidden()  # at or under the threshold: no job
    assert page.locator("#prev").is_disabled()
    page.click("#next")
    expect(page.locator("#page-label")).to_have_text("Page 2 (2 of 2)")
    expect(page.locator("#boxes rect.line")).to_have_count(2)
    assert has_words(page.locator("#text").text_content() or "", f"{LINE_TWO} {LINE_ONE}")
    page.click("#prev")
    expect(page.locator("#page-label")).to_have_text("Page 1 (1 of 2)")
    expect(page.locator("#boxes rect.word")).to_have_count(len(LINE_ONE.split()))
    demo.check_clean()


def test_an_invalid_file_shows_the_problems_title_and_detail(demo: Watched, server: str, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_bytes(b"this is not a scan\n")
    problem = httpx.post(f"{server}/v1/ocr", files={"file": bogus.read_bytes()}, timeout=30).json()
    page = demo.page
    page.set_input_files("#file", bogus)
    expect(page.locator("#error")).to_be_visible()
    assert page.locator("#error-title").text_content() == problem["title"] == "Unsupported document type"
    assert page.locator("#error-detail").text_content() == problem["detail"]
    assert page.locator("#result").is_hidden()
    demo.check_clean(allowed_errors=("415",))  # the browser logs the failed fetch itself


def test_with_api_keys_the_page_asks_for_one_and_keeps_it_in_session_storage(
    browser: Browser, keyed_server: str, tmp_path: Path
) -> None:
    assert httpx.get(f"{keyed_server}/v1/languages").status_code == 401
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watched = Watched(page, keyed_server)
    response = page.goto(f"{keyed_server}/demo")
    assert response is not None and response.status == 200  # the page itself needs no key

    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#key-message")).to_contain_text("No API key was sent")
    page.fill("#key-input", "wrong-key")
    page.click("#key-form button")
    expect(page.locator("#key-message")).to_contain_text("The API key is not valid")
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") is None

    page.fill("#key-input", API_KEY)
    page.click("#key-form button")
    expect(page.locator("#languages input[value=eng]")).to_be_checked()
    expect(page.locator("#key-form")).to_be_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == API_KEY
    assert page.evaluate("localStorage.length") == 0
    assert context.cookies() == []

    with page.expect_request(lambda request: "/v1/ocr" in request.url) as sent:
        page.set_input_files("#file", SCAN)
    assert sent.value.headers.get("authorization") == f"Bearer {API_KEY}"
    expect(page.locator("#status")).to_contain_text("Recognised 1 page(s)")
    assert page.locator("#boxes rect.word").count() > 20
    assert "CATALYST_OCR_API_KEY" in page.locator("#snippet").input_value()
    assert API_KEY not in page.locator("#snippet").input_value()

    # A job's events are read with fetch, not EventSource, precisely so that they carry the key.
    pdf = tmp_path / "three-pages.pdf"
    pdf.write_bytes(multipage("PDF", [[LINE_ONE], [LINE_TWO], [LINE_ONE]]))
    with page.expect_request(lambda request: request.url.endswith("/events")) as events:
        page.set_input_files("#file", pdf)
    assert events.value.headers.get("authorization") == f"Bearer {API_KEY}"
    expect(page.locator("#status")).to_contain_text("Recognised 3 page(s)")
    expect(page.locator("#job-status")).to_have_text("succeeded: 3 of 3 pages")

    fresh = context.new_page()  # another tab: session storage is per tab, so it asks again
    fresh.set_default_timeout(WAIT_MS)
    fresh.goto(f"{keyed_server}/demo")
    expect(fresh.locator("#key-form")).to_be_visible()
    watched.check_clean(allowed_errors=("401",))
    context.close()
