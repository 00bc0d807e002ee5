"""`catalyst-ocr ocr` recognises files with the same engine and options as the API; errors are clear."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from service_support import CATALYST_OCR, LINE_ONE, LINE_TWO, has_words, multipage, png

from ocr_service.app import create_app

ENV = {**os.environ, "OMP_THREAD_LIMIT": "1", "OCR_WORKERS": "1"}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(CATALYST_OCR), *args], cwd=cwd, env=ENV, capture_output=True, timeout=120, check=False)


def test_ocr_prints_text_and_json(tmp_path: Path) -> None:
    (tmp_path / "scan.png").write_bytes(png([LINE_ONE]))
    text = run("ocr", "scan.png", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert has_words(text.stdout.decode(), LINE_ONE)

    as_json = run("ocr", "scan.png", "--format", "json", "--psm", "6", "--no-deskew", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert has_words(result["text"], LINE_ONE)
    assert result["pages"][0]["number"] == 1


def test_ocr_reads_standard_input(tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(CATALYST_OCR), "ocr", "-", "--format", "text"],
        input=png([LINE_TWO]),
        env=ENV,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert has_words(completed.stdout.decode(), LINE_TWO)


def test_ocr_writes_one_file_per_input_into_a_directory(tmp_path: Path) -> None:
    (tmp_path / "first.png").write_bytes(png([LINE_ONE]))
    (tmp_path / "second.pdf").write_bytes(multipage("PDF", [[LINE_TWO], [LINE_ONE]]))
    out = tmp_path / "out"
    out.mkdir()
    result = run("ocr", "first.png", "second.pdf", "--format", "pdf", "--pages", "1", "-o", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name, expected in (("first.pdf", LINE_ONE), ("second.pdf", LINE_TWO)):
        document = pdfium.PdfDocument(out / name)
        try:
            assert len(document) == 1
            assert has_words(document[0].get_textpage().get_text_range(), expected)
        finally:
            document.close()


def test_bad_option_and_bad_file_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "scan.png").write_bytes(png([LINE_ONE]))
    (tmp_path / "noise.bin").write_bytes(os.urandom(1000))
    bad_option = run("ocr", "scan.png", "--psm", "14", cwd=tmp_path)
    assert bad_option.returncode == 2
    assert b"psm must be from 0 to 13" in bad_option.stderr

    mixed = run("ocr", "noise.bin", "missing.png", "scan.png", cwd=tmp_path)
    assert mixed.returncode == 1
    stderr = mixed.stderr.decode()
    assert "noise.bin: Unsupported document type" in stderr
    assert "missing.png: Cannot read the file" in stderr
    assert has_words(mixed.stdout.decode(), LINE_ONE), "the good file is still recognised"
    assert "Traceback" not in stderr


def test_python_dash_m_and_invalid_settings(tmp_path: Path) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "ocr_service", "--version"], capture_output=True, timeout=60, check=False
    )
    assert version.returncode == 0 and version.stdout.startswith(b"catalyst-ocr ")
    broken = subprocess.run(
        [str(CATALYST_OCR), "serve"],
        env={**ENV, "OCR_MAX_PAGES": "lots"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert broken.returncode == 2
    assert b"OCR_MAX_PAGES must be an integer" in broken.stderr


def test_uvicorn_factory_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`uvicorn --factory ocr_service.app:create_app` gets the same settings the CLI would."""
    monkeypatch.setenv("OCR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OCR_MAX_PAGES", "7")
    monkeypatch.setenv("OCR_API_KEYS", "k1,k2")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        app = create_app()
    finally:
        root.handlers, root.level = handlers, level  # create_app configures logging; undo it for other tests
    assert app.state.settings.max_pages == 7
    assert app.state.api_keys.configured
    assert app.state.settings.data_dir == str(tmp_path)


def test_output_directory_is_created_and_same_stems_do_not_overwrite(tmp_path: Path) -> None:
    """`-o results/` (the README's command) on a fresh checkout: the directory does not exist yet."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "scan.png").write_bytes(png([LINE_ONE]))
    (tmp_path / "b" / "scan.png").write_bytes(png([LINE_TWO]))
    result = run("ocr", "a/scan.png", "b/scan.png", "--format", "json", "--psm", "6", "-o", "results/", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "results").iterdir()) == ["scan-2.json", "scan.json"]
    assert has_words(json.loads((tmp_path / "results" / "scan.json").read_bytes())["text"], LINE_ONE)
    assert has_words(json.loads((tmp_path / "results" / "scan-2.json").read_bytes())["text"], LINE_TWO)

    single = run("ocr", "a/scan.png", "--psm", "6", "-o", "texts/", cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    assert has_words((tmp_path / "texts" / "scan.txt").read_text(), LINE_ONE), "a trailing slash means a directory"


def test_several_inputs_on_stdout_say_which_file_each_result_is(tmp_path: Path) -> None:
    (tmp_path / "one.png").write_bytes(png([LINE_ONE]))
    (tmp_path / "two.png").write_bytes(png([LINE_TWO]))
    text = run("ocr", "one.png", "two.png", "--psm", "6", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    _, first, second = text.stdout.decode().split("==> ")
    assert first.startswith("one.png <==\n") and has_words(first, LINE_ONE)
    assert second.startswith("two.png <==\n") and has_words(second, LINE_TWO)

    lines = run("ocr", "one.png", "two.png", "--psm", "6", "--format", "json", cwd=tmp_path)
    assert lines.returncode == 0, lines.stderr
    results = [json.loads(line) for line in lines.stdout.decode().splitlines()]
    assert [result["source"] for result in results] == ["one.png", "two.png"]
    assert has_words(results[1]["text"], LINE_TWO)

    pdfs = run("ocr", "one.png", "two.png", "--format", "pdf", cwd=tmp_path)
    assert pdfs.returncode == 2 and b"-o DIRECTORY/" in pdfs.stderr


def test_switches_take_the_api_spelling_too(tmp_path: Path) -> None:
    """The README writes `--sharpen true` as the API does; `--sharpen`/`--no-sharpen` work as well."""
    (tmp_path / "scan.png").write_bytes(png([LINE_ONE]))
    spelled = run("ocr", "scan.png", "--format", "json", "--sharpen", "true", "--deskew=false", cwd=tmp_path)
    assert spelled.returncode == 0, spelled.stderr
    steps = {step["name"]: step for step in json.loads(spelled.stdout)["pages"][0]["preprocessing"]["steps"]}
    assert steps["sharpen"]["decision"] == "forced" and steps["deskew"]["decision"] == "off"


def test_serve_defaults_to_loopback_and_warns_when_open_without_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ocr_service.cli import warn_if_open
    from ocr_service.settings import Settings

    assert Settings.from_env({}).host == "127.0.0.1", "no authentication by default, so no network by default"
    with caplog.at_level(logging.WARNING):
        warn_if_open(Settings(data_dir=str(tmp_path)))
        warn_if_open(Settings(data_dir=str(tmp_path), host="0.0.0.0", api_keys=("k",)))
        assert not caplog.records
        warn_if_open(Settings(data_dir=str(tmp_path), host="0.0.0.0"))
    (record,) = caplog.records
    assert "without API keys" in record.getMessage() and "OCR_API_KEYS" in record.getMessage()
