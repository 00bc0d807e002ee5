"""The portable fallback: the `tesseract` command line (found the way pytesseract finds it).

Each page is one `tesseract` process asked for every needed output at once (`txt tsv hocr alto
pdf` configs), so the page is still recognised only once. The model is built from the TSV's
levels (block 2, line 4, word 5). The process runs in its own process group with `OMP_THREAD_LIMIT=1`;
on the time limit the whole process group is SIGKILLed and reaped, so no orphan keeps burning
CPU. This reloads the model on every page, which is why `auto` prefers tesserocr (see
`benchmarks/engines.py`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytesseract
from PIL import Image

from ocr_service.documents import PixelArray
from ocr_service.engine.base import PageRender, RecognitionRequest, engine_init_failed
from ocr_service.engine.model import BBox, Block, EngineInfo, Word, WordPlace, mean, nest_words
from ocr_service.engine.renderers import hocr_fragment_of_document, tsv_rows_with_page
from ocr_service.errors import RecognitionTimeout
from ocr_service.options import OutputFormat

_CONFIG_OF_FORMAT = {OutputFormat.HOCR: "hocr", OutputFormat.ALTO: "alto", OutputFormat.PDF: "pdf"}
_SUFFIX_OF_FORMAT = {OutputFormat.HOCR: ".hocr", OutputFormat.ALTO: ".xml", OutputFormat.PDF: ".pdf"}


def tesseract_command() -> str:
    """The tesseract executable pytesseract is configured with, resolved on PATH."""
    command = str(pytesseract.pytesseract.tesseract_cmd)
    resolved = shutil.which(command)
    if resolved is None:
        raise RuntimeError(f"the tesseract command {command!r} is not installed or not on PATH")
    return resolved


class PytesseractBackend:
    """Spawns one Tesseract process per page (see module docstring)."""

    def __init__(self) -> None:
        self._command = tesseract_command()
        version = str(pytesseract.get_tesseract_version())
        self._info = EngineInfo("pytesseract", version)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def new_recognizer(self) -> CliRecognizer:
        return CliRecognizer(self._command)


class CliRecognizer:
    """Stateless apart from the command path; one per worker thread like every recognizer."""

    def __init__(self, command: str) -> None:
        self._command = command
        self._env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def close(self) -> None:
        """Nothing is kept between pages."""

    def recognize(self, pixels: PixelArray, request: RecognitionRequest) -> PageRender:
        configs = ["txt", "tsv"] + [_CONFIG_OF_FORMAT[f] for f in sorted(request.formats) if f in _CONFIG_OF_FORMAT]
        with tempfile.TemporaryDirectory(prefix="catalyst-ocr-") as tmp:
            source = Path(tmp) / f"page-{request.page_number}.pnm"
            Image.fromarray(pixels).save(source, format="PPM")
            base = Path(tmp) / "out"
            args = [self._command, str(source), str(base), "-l", request.lang]
            args += ["--psm", str(request.psm), "--oem", str(request.oem)]
            if request.dpi:
                args += ["--dpi", str(request.dpi)]
            self._run(args + configs, request)
            text = base.with_suffix(".txt").read_text(encoding="utf-8")
            if text.endswith("\f"):
                text = text[:-1]
            tsv = base.with_suffix(".tsv").read_text(encoding="utf-8")
            parts: dict[OutputFormat, bytes] = {}
            if OutputFormat.TEXT in request.formats:
                parts[OutputFormat.TEXT] = text.encode()
            if OutputFormat.TSV in request.formats:
                parts[OutputFormat.TSV] = tsv_rows_with_page(tsv, request.page_number).encode()
            if OutputFormat.HOCR in request.formats:
                hocr = base.with_suffix(".hocr").read_text(encoding="utf-8")
                parts[OutputFormat.HOCR] = hocr_fragment_of_document(hocr, request.page_number).encode()
            for fmt in (OutputFormat.ALTO, OutputFormat.PDF):
                if fmt in request.formats:
                    parts[fmt] = base.with_suffix(_SUFFIX_OF_FORMAT[fmt]).read_bytes()
        blocks = blocks_from_tsv(tsv)
        if request.with_words:
            return PageRender(blocks=blocks, text=text, parts=parts)
        # The same shape as the warm engine: no word model, the mean confidence of the words.
        confidence = mean([word.confidence for block in blocks for line in block.lines for word in line.words])
        return PageRender(blocks=(), text=text, parts=parts, confidence=confidence)

    def _run(self, args: list[str], request: RecognitionRequest) -> None:
        timeout = request.timeout_ms / 1000 if request.timeout_ms > 0 else None
        process = subprocess.Popen(
            # Its own process group (so the kill reaches any child) but not its own session: a new
            # session would also get its own scheduler autogroup, i.e. more than its share of the CPU.
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
            process_group=0,
        )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise RecognitionTimeout(f"page {request.page_number}: recognition stopped at the time limit") from None
        except BaseException:
            _kill_group(process)
            raise
        if process.returncode != 0:
            message = stderr.decode(errors="replace").strip()
            if "Failed loading language" in message or "Could not initialize tesseract" in message:
                raise engine_init_failed(request.lang, request.oem)
            raise RuntimeError(f"tesseract exited with {process.returncode}: {message[-500:]}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process's whole group (it may have children) and reap it, leaving no orphan or zombie."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def blocks_from_tsv(tsv: str) -> tuple[Block, ...]:
    """Rebuild block > paragraph > line > word from TSV levels 2 (block), 3 (paragraph), 4 (line), 5 (word)."""
    block_boxes: dict[int, BBox] = {}
    paragraph_boxes: dict[tuple[int, int], BBox] = {}
    line_boxes: dict[tuple[int, int, int], BBox] = {}
    words: list[WordPlace] = []
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 11:
            continue
        level, block, paragraph, line = int(cells[0]), int(cells[2]), int(cells[3]), int(cells[4])
        box = (int(cells[6]), int(cells[7]), int(cells[8]), int(cells[9]))
        if level == 2:
            block_boxes[block] = box
        elif level == 3:
            paragraph_boxes[(block, paragraph)] = box
        elif level == 4:
            line_boxes[(block, paragraph, line)] = box
        elif level == 5:
            text = cells[11].strip() if len(cells) > 11 else ""
            if text:  # the level 2-4 rows of a word come before it in the TSV
                word = Word(text, round(float(cells[10]), 2), box)
                places = (block_boxes.get(block), paragraph_boxes.get((block, paragraph)))
                line_box = line_boxes.get((block, paragraph, line), (0, 0, 0, 0))
                words.append((places[0] or (0, 0, 0, 0), places[1] or (0, 0, 0, 0), line_box, word))
    return nest_words(words)
