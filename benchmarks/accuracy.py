"""Accuracy benchmark: raw Tesseract vs `preprocess=auto`, as CER/WER per degradation family.

    .venv/bin/python benchmarks/accuracy.py            # full run (a few minutes on one core)
    .venv/bin/python benchmarks/accuracy.py --quick    # CI smoke run, under a minute
    .venv/bin/python benchmarks/accuracy.py --check    # exit 1 if a target of issue 5 is missed
    .venv/bin/python benchmarks/accuracy.py --cost     # what `auto` costs per step, next to recognition
    .venv/bin/python benchmarks/accuracy.py --skew     # deskew's angles and decisions on one-line crops

Two sets: (a) the public scans in `../shared/ocr-corpus/` (real pages with ground truth,
including phototest turned left, right and upside down) and (b) synthetic pages rendered from
known prose and degraded in controlled ways (`_degrade.py`). Both sides use the same warm
tesserocr engine (LSTM, PSM 3) on the same pages; the only difference is `preprocess`. Texts are
compared after folding whitespace: CER is the character edit distance over the truth's length,
WER the same over words. Pooled rates sum the edits over all pages of a set. Printed as markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import cv2
import numpy as np
import tesserocr
from numpy.typing import NDArray
from rapidfuzz.distance import Levenshtein

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._degrade import FAMILIES, _rotate, sample
from benchmarks._images import a4_page, receipt_line, render_lines, words
from ocr_service.options import PreprocessOptions
from ocr_service.preprocess import preprocess

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "ocr-corpus"
CORPUS_PAGES = (
    ("phototest.tif", "phototest.txt", "eng"),
    ("phototest-rotated-L.png", "phototest.txt", "eng"),
    ("phototest-rotated-R.png", "phototest.txt", "eng"),
    ("phototest-rotated-180.png", "phototest.txt", "eng"),
    ("eurotext.tif", "eurotext.txt", "eng+deu+fra"),
    ("8071_093.3B.tif", "8071_093.3B.txt", "eng"),
    ("8087_054.3B.tif", "8087_054.3B.txt", "eng"),
)
QUICK_CORPUS = 4
"""--quick keeps the four small phototest pages."""

SAMPLES_PER_FAMILY = 6
QUICK_SAMPLES_PER_FAMILY = 1


def fold(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Tally:
    """Edits and lengths summed over a group of pages, for one side (raw or auto)."""

    char_edits: int = 0
    chars: int = 0
    word_edits: int = 0
    words: int = 0
    recognise_ms: float = 0.0
    preprocess_ms: float = 0.0
    pages: int = 0
    page_cers: list[float] = field(default_factory=list)

    def add(self, hypothesis: str, truth: str, recognise_ms: float, preprocess_ms: float = 0.0) -> None:
        hyp, ref = fold(hypothesis), fold(truth)
        edits = Levenshtein.distance(hyp, ref)
        self.char_edits += edits
        self.chars += len(ref)
        self.word_edits += Levenshtein.distance(hyp.split(), ref.split())
        self.words += len(ref.split())
        self.recognise_ms += recognise_ms
        self.preprocess_ms += preprocess_ms
        self.pages += 1
        self.page_cers.append(edits / max(len(ref), 1))

    def merge(self, other: Tally) -> None:
        self.char_edits += other.char_edits
        self.chars += other.chars
        self.word_edits += other.word_edits
        self.words += other.words
        self.recognise_ms += other.recognise_ms
        self.preprocess_ms += other.preprocess_ms
        self.pages += other.pages
        self.page_cers += other.page_cers

    @property
    def cer(self) -> float:
        return self.char_edits / max(self.chars, 1)

    @property
    def wer(self) -> float:
        return self.word_edits / max(self.words, 1)


class Engines:
    """One warm tesserocr API per language set, shared by both sides so they differ only in preprocessing."""

    def __init__(self) -> None:
        self._apis: dict[str, tesserocr.PyTessBaseAPI] = {}

    def recognise(self, image: NDArray[np.uint8], lang: str) -> tuple[str, float]:
        api = self._apis.get(lang)
        if api is None:
            api = tesserocr.PyTessBaseAPI(lang=lang, psm=tesserocr.PSM.AUTO, oem=tesserocr.OEM.LSTM_ONLY)
            self._apis[lang] = api
        image = np.ascontiguousarray(image)
        start = time.perf_counter()
        api.SetImageBytes(image.tobytes(), image.shape[1], image.shape[0], 1, image.shape[1])
        text = api.GetUTF8Text()
        api.Clear()
        return text, (time.perf_counter() - start) * 1000

    def close(self) -> None:
        for api in self._apis.values():
            api.End()


def gray(image: NDArray[np.generic]) -> NDArray[np.uint8]:
    """What raw Tesseract is given: the decoded page as 8-bit gray, nothing else changed."""
    if image.ndim == 3:
        image = cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_BGR2GRAY)
    return np.asarray(image, dtype=np.uint8)


def compare(engines: Engines, image: NDArray[np.uint8], truth: str, lang: str, raw: Tally, auto: Tally) -> None:
    text, ms = engines.recognise(image, lang)
    raw.add(text, truth, ms)
    start = time.perf_counter()
    prepared, _ = preprocess(image, PreprocessOptions(mode="auto"))
    pre_ms = (time.perf_counter() - start) * 1000
    text, ms = engines.recognise(prepared, lang)
    auto.add(text, truth, ms, pre_ms)


def corpus_pages(quick: bool) -> Iterator[tuple[str, NDArray[np.uint8], str, str]]:
    pages = CORPUS_PAGES[:QUICK_CORPUS] if quick else CORPUS_PAGES
    for image_name, truth_name, lang in pages:
        decoded = cv2.imread(str(CORPUS / image_name), cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise SystemExit(f"cannot read {CORPUS / image_name}")
        yield image_name, gray(decoded), (CORPUS / truth_name).read_text(encoding="utf-8"), lang


def ratio(auto: Tally, raw: Tally) -> str:
    if raw.cer == 0:
        return "-" if auto.cer == 0 else "inf"
    return f"{auto.cer / raw.cer:.2f}"


def row(name: str, raw: Tally, auto: Tally) -> str:
    share = auto.preprocess_ms / max(auto.preprocess_ms + auto.recognise_ms, 1e-9)
    pages = max(auto.pages, 1)
    return (
        f"| {name} | {raw.pages} | {raw.cer:.2%} | {auto.cer:.2%} | {ratio(auto, raw)} | {raw.wer:.2%} "
        f"| {auto.wer:.2%} | {auto.preprocess_ms / pages:.0f} | {auto.recognise_ms / pages:.0f} | {share:.0%} |"
    )


HEADER = (
    "| pages | n | raw CER | auto CER | auto/raw | raw WER | auto WER | preprocess ms/page | recognise ms/page | "
    "preprocess share |\n|---|---|---|---|---|---|---|---|---|---|"
)


COST_SETS = (("receipt line", 50), ("A4 page", 3))
"""--cost measures 50 one-line receipt crops (where recognition is cheapest, so preprocessing shows)
and 3 full 300-DPI pages, from `benchmarks/_images.py`."""


def _cost_images(kind: str, count: int) -> list[NDArray[np.uint8]]:
    render = receipt_line if kind == "receipt line" else a4_page
    return [np.asarray(render(seed)[0], dtype=np.uint8) for seed in range(count)]


def preprocess_cost(engines: Engines, repeats: int = 3) -> list[str]:
    """Per-step ms of `auto` as its report states them, and recognition of the same images.

    Each image is preprocessed `repeats` times and its fastest run kept, so that a neighbour's
    burst on a shared machine does not count as preprocessing.
    """
    lines = ["### What `preprocess=auto` costs", ""]
    for kind, count in COST_SETS:
        images = _cost_images(kind, count)
        totals: list[float] = []
        steps: dict[str, list[float]] = {}
        osd_runs = 0
        for image in images:
            runs = [cast(dict[str, Any], preprocess(image, PreprocessOptions(mode="auto"))[1]) for _ in range(repeats)]
            fastest = min(runs, key=lambda report: float(report["ms"]))
            totals.append(float(fastest["ms"]))
            osd_runs += fastest["orientation"] is not None
            for step in fastest["steps"]:
                steps.setdefault(step["name"], []).append(float(step["ms"]))
        recognise = [engines.recognise(image, "eng")[1] for image in images]
        mean_pre, mean_rec = float(np.mean(totals)), float(np.mean(recognise))
        lines.append(
            f"{kind} ({count}, {images[0].shape[1]}x{images[0].shape[0]} px): auto {mean_pre:.2f} ms mean, "
            f"{max(totals):.2f} max; recognition {mean_rec:.1f} ms mean; auto/recognition = "
            f"{mean_pre / mean_rec:.2f}; OSD ran on {osd_runs}"
        )
        lines += ["", "| step | mean ms | max ms |", "|---|---|---|"]
        lines += [f"| {name} | {np.mean(ms):.2f} | {max(ms):.2f} |" for name, ms in steps.items()]
        lines.append("")
    return lines


SKEW_ANGLES = (0.0, 1.0, -1.0, 3.0, -3.0)
"""--skew tilts each one-line crop by these true angles (degrees, counter-clockwise)."""


def _one_line_crops(kind: str, count: int) -> list[NDArray[np.uint8]]:
    """Receipt lines (580x80 px, 4 words and a price) or short words (1-2 words, 18-32 px type)."""
    if kind == "receipt line":
        return _cost_images(kind, count)
    crops = []
    for seed in range(count):
        text = " ".join(words(seed, 1 + seed % 2))
        crops.append(np.asarray(render_lines([text], font_size=18 + 2 * (seed % 8), margin=12), dtype=np.uint8))
    return crops


def skew_report(count: int = 50) -> list[str]:
    """What deskew measures and does under `auto` on single lines tilted by known angles.

    A line is "deskewed" when auto rotated it; "within 0.5" counts lines that end up within half a
    degree of straight (left alone, or rotated by about their tilt); "made worse" counts rotations
    that leave a line further from straight than it came (or turn a straight one by 0.5 deg or more).
    """
    lines = ["### Deskew on one-line crops (`preprocess=auto`)", ""]
    lines += ["| crops | true angle | measured, mean abs error | max abs error | deskewed | within 0.5 | made worse |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for kind in ("receipt line", "short words"):
        crops = _one_line_crops(kind, count)
        for true in SKEW_ANGLES:
            errors, turned, within, worse = [], 0, 0, 0
            for crop in crops:
                tilted = _rotate(crop, true) if true else crop
                _, report = preprocess(tilted, PreprocessOptions(mode="auto"))
                step = next(step for step in cast(list[dict[str, Any]], report["steps"]) if step["name"] == "deskew")
                errors.append(abs(float(step["params"].get("skew", 0.0)) - true))
                applied = float(cast(dict[str, Any], report["transform"])["deskew"])
                turned += bool(step["applied"])
                left = abs(true - applied)
                within += left <= 0.5
                worse += bool(step["applied"]) and left > max(abs(true) - 1e-9, 0.5)
            lines.append(
                f"| {kind} | {true:+.0f} | {np.mean(errors):.2f} | {max(errors):.2f} | {turned}/{count} "
                f"| {within}/{count} | {worse} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one page per family and the small corpus pages")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the issue-5 targets hold")
    parser.add_argument("--samples", type=int, default=None, help="synthetic pages per family")
    parser.add_argument("--families", default="", help="comma-separated synthetic families (default: all)")
    parser.add_argument("--no-corpus", action="store_true", help="skip the real scans")
    parser.add_argument("--cost", action="store_true", help="only time auto per step on receipt lines and A4 pages")
    parser.add_argument("--skew", action="store_true", help="only report deskew's angles on one-line crops")
    args = parser.parse_args()
    per_family = args.samples or (QUICK_SAMPLES_PER_FAMILY if args.quick else SAMPLES_PER_FAMILY)
    if args.skew:
        print("\n".join(skew_report()))
        return 0
    engines = Engines()
    if args.cost:
        print("\n".join(preprocess_cost(engines)))
        engines.close()
        return 0
    started = time.perf_counter()
    lines = ["### Real scans (`../shared/ocr-corpus/`)", "", HEADER]
    corpus_raw, corpus_auto = Tally(), Tally()
    use_corpus = not args.no_corpus and CORPUS.is_dir()
    if not use_corpus:
        lines.insert(1, f"(skipped: {'--no-corpus' if args.no_corpus else f'{CORPUS} not found'})")
    for name, image, truth, lang in corpus_pages(args.quick) if use_corpus else []:
        raw, auto = Tally(), Tally()
        compare(engines, image, truth, lang, raw, auto)
        lines.append(row(f"`{name}`", raw, auto))
        corpus_raw.merge(raw)
        corpus_auto.merge(auto)
    lines.append(row("**pooled**", corpus_raw, corpus_auto))
    lines += ["", f"### Synthetic degraded pages ({per_family} per family)", "", HEADER]
    failures: list[str] = []
    degraded_raw, degraded_auto, everything_auto = Tally(), Tally(), Tally()
    chosen = [name.strip() for name in args.families.split(",") if name.strip()] or list(FAMILIES)
    unknown = set(chosen) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; choose from {list(FAMILIES)}")
    for family in chosen:
        raw, auto = Tally(), Tally()
        for index in range(per_family):
            page = sample(family, index)
            compare(engines, page.image, page.truth, "eng", raw, auto)
        lines.append(row(family, raw, auto))
        everything_auto.merge(auto)
        if family != "clean":
            degraded_raw.merge(raw)
            degraded_auto.merge(auto)
        if auto.cer > raw.cer:
            failures.append(f"auto raises CER on {family}: {raw.cer:.2%} -> {auto.cer:.2%}")
    lines.append(row("**pooled (degraded families)**", degraded_raw, degraded_auto))
    engines.close()
    share = everything_auto.preprocess_ms / max(everything_auto.preprocess_ms + everything_auto.recognise_ms, 1e-9)
    lines += [
        "",
        f"Pooled CER on the degraded families: raw {degraded_raw.cer:.2%}, auto {degraded_auto.cer:.2%} "
        f"(auto/raw = {ratio(degraded_auto, degraded_raw)}; target <= 0.20). "
        f"Preprocessing takes {share:.0%} of auto's time on synthetic pages. "
        f"Run took {time.perf_counter() - started:.0f} s.",
    ]
    if corpus_auto.cer > corpus_raw.cer:
        failures.append(f"auto raises pooled CER on real scans: {corpus_raw.cer:.2%} -> {corpus_auto.cer:.2%}")
    if degraded_raw.cer > 0 and degraded_auto.cer > degraded_raw.cer / 5:
        failures.append(f"pooled degraded CER ratio {degraded_auto.cer / degraded_raw.cer:.2f} > 0.20")
    print("\n".join(lines))
    for failure in failures:
        print(f"MISSED: {failure}")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
