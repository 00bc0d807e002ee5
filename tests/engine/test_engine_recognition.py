"""The pipeline on the real Tesseract: every input and output format, bboxes, pages, languages, both engines.

Images are rendered from known text; assertions compare the words Tesseract read back.
"""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from engine_images import LINE_HEIGHT, MARGIN, encode, multipage, text_image

from ocr_service.engine.model import PageResult
from ocr_service.errors import InvalidParameter, TooManyPages, UndecodableDocument, UnknownLanguage
from ocr_service.options import MEDIA_TYPES, OcrOptions, OutputFormat, PreprocessOptions
from ocr_service.pipeline import OcrOutcome, OcrPipeline, PageOutcome

pytestmark = pytest.mark.xdist_group("engine")

LINES = ["Quick brown foxes jump", "over seven lazy dogs 1234"]
WORDS = " ".join(LINES).split()
PAGE_TEXTS = [["Alpha invoice total"], ["Bravo receipt number"], ["Charlie delivery address"]]
NONE = PreprocessOptions(mode="none")


def options(fmt: OutputFormat = OutputFormat.JSON, **kw: object) -> OcrOptions:
    return OcrOptions(format=fmt, preprocess=kw.pop("preprocess", NONE), **kw)  # type: ignore[arg-type]


def run(pipeline: OcrPipeline, data: bytes, opts: OcrOptions) -> OcrOutcome:
    return asyncio.run(pipeline.run(data, opts))


def words_of(outcome: OcrOutcome) -> list[str]:
    return [w.text for page in outcome.result.pages for w in page.words]


# -- inputs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_every_single_page_input_format_is_read(pipeline: OcrPipeline, fmt: str) -> None:
    params: dict[str, object] = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    outcome = run(pipeline, encode(text_image(LINES, mode="RGB"), fmt, **params), options())
    assert words_of(outcome) == WORDS
    assert outcome.result.confidence > 80


@pytest.mark.parametrize("fmt", ["TIFF", "PDF", "GIF"])
def test_every_page_of_multipage_documents_is_read_in_order(pipeline: OcrPipeline, fmt: str) -> None:
    data = multipage([text_image(lines) for lines in PAGE_TEXTS], fmt)
    outcome = run(pipeline, data, options())
    pages = outcome.result.pages
    assert [p.number for p in pages] == [1, 2, 3]
    assert [[w.text for w in p.words] for p in pages] == [lines[0].split() for lines in PAGE_TEXTS]
    assert outcome.result.text.split("\f") == [lines[0] for lines in PAGE_TEXTS]


def test_pages_option_selects_pages_in_the_order_asked(pipeline: OcrPipeline) -> None:
    data = multipage([text_image(lines) for lines in PAGE_TEXTS], "TIFF")
    outcome = run(pipeline, data, options(pages=(3, 1)))
    assert [p.number for p in outcome.result.pages] == [3, 1]
    assert outcome.result.pages[0].text == PAGE_TEXTS[2][0]
    with pytest.raises(InvalidParameter) as caught:
        run(pipeline, data, options(pages=(4,)))
    assert caught.value.param == "pages"


# -- the JSON model ------------------------------------------------------------------------------


def test_json_shape_and_bboxes(pipeline: OcrPipeline) -> None:
    image = text_image(LINES)
    data = encode(image, "PNG")
    outcome = run(pipeline, data, options())
    assert outcome.media_type == "application/json"
    body = json.loads(outcome.body)
    assert body["text"] == "\n".join(LINES)
    assert body["language"] == "eng"
    assert body["engine"] == {"name": "capi", "version": "5.3.0"}
    assert set(body["timings"]) == {"decode_ms", "preprocess_ms", "recognize_ms", "total_ms", "parallel"}
    assert body["timings"]["total_ms"] >= body["timings"]["recognize_ms"] > 0
    import hashlib

    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    (page,) = body["pages"]
    assert (page["number"], page["width"], page["height"]) == (1, image.width, image.height)
    assert page["preprocessing"]["mode"] == "none"
    lines = [line for block in page["blocks"] for paragraph in block["paragraphs"] for line in paragraph["lines"]]
    assert [line["text"] for line in lines] == LINES
    for index, line in enumerate(lines):
        x, y, w, h = line["bbox"]
        # each line sits where it was drawn: its row of the image, starting at the margin
        assert abs(x - MARGIN) <= 4
        assert MARGIN + index * LINE_HEIGHT - 2 <= y <= MARGIN + index * LINE_HEIGHT + LINE_HEIGHT // 2
        previous_right = -1
        for word in line["words"]:
            wx, wy, ww, wh = word["bbox"]
            assert ww > 0 and 0 < wh <= LINE_HEIGHT
            assert x <= wx and wx + ww <= x + w and y <= wy and wy + wh <= y + h  # inside its line
            assert wx > previous_right  # left to right, no overlap
            previous_right = wx + ww
            assert 0 <= word["confidence"] <= 100
    assert body["confidence"] == pytest.approx(
        sum(w["confidence"] for line in lines for w in line["words"]) / len(WORDS), abs=0.01
    )


def test_boxes_are_mapped_back_when_preprocessing_rescales(pipeline: OcrPipeline) -> None:
    small = text_image(LINES).resize((300, 40))  # tiny text: auto preprocessing upscales it
    plain = run(
        pipeline, encode(small, "PNG"), options(preprocess=PreprocessOptions(mode="none", steps={"upscale": True}))
    )
    page = plain.result.pages[0]
    assert page.preprocessing["scale"] > 1
    assert (page.image_width, page.image_height) != (page.width, page.height)
    for word in page.words:
        x, y, w, h = word.bbox
        assert x >= 0 and x + w <= page.width and y >= 0 and y + h <= page.height


# -- outputs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_pages() -> bytes:
    return multipage([text_image(PAGE_TEXTS[0]), text_image(PAGE_TEXTS[1])], "TIFF")


def test_text_output(pipeline: OcrPipeline, two_pages: bytes) -> None:
    outcome = run(pipeline, two_pages, options(OutputFormat.TEXT))
    assert outcome.media_type == MEDIA_TYPES[OutputFormat.TEXT]
    assert [page.strip() for page in outcome.body.decode().split("\f")] == [PAGE_TEXTS[0][0], PAGE_TEXTS[1][0]]


def test_hocr_output(pipeline: OcrPipeline, two_pages: bytes) -> None:
    outcome = run(pipeline, two_pages, options(OutputFormat.HOCR))
    html = outcome.body.decode()
    assert outcome.media_type.startswith("text/html")
    assert html.count("class='ocr_page'") == 2
    assert "id='page_1'" in html and "id='page_2'" in html
    words = re.findall(r"<span class='ocrx_word'[^>]*>([^<]+)</span>", html)
    assert words == PAGE_TEXTS[0][0].split() + PAGE_TEXTS[1][0].split()
    ids = re.findall(r"id='([^']+)'", html)
    assert len(ids) == len(set(ids))  # ids stay unique across pages
    ET.fromstring(html.split("\n", 3)[3].replace("&nbsp;", " "))  # well-formed XHTML below the doctype


def test_tsv_output(pipeline: OcrPipeline, two_pages: bytes) -> None:
    outcome = run(pipeline, two_pages, options(OutputFormat.TSV))
    rows = [line.split("\t") for line in outcome.body.decode().splitlines()]
    assert rows[0][:2] == ["level", "page_num"]
    words = [(int(r[1]), r[11]) for r in rows[1:] if r[0] == "5" and r[11].strip()]
    expected = [(1, w) for w in PAGE_TEXTS[0][0].split()] + [(2, w) for w in PAGE_TEXTS[1][0].split()]
    assert words == expected


def test_alto_output(pipeline: OcrPipeline, two_pages: bytes) -> None:
    outcome = run(pipeline, two_pages, options(OutputFormat.ALTO))
    root = ET.fromstring(outcome.body)
    ns = {"a": "http://www.loc.gov/standards/alto/ns-v3#"}
    pages = root.findall(".//a:Page", ns)
    assert len(pages) == 2
    strings = [[s.get("CONTENT") for s in page.iter(f"{{{ns['a']}}}String")] for page in pages]
    assert strings == [PAGE_TEXTS[0][0].split(), PAGE_TEXTS[1][0].split()]
    ids = [element.get("ID") for element in root.iter() if element.get("ID")]
    assert len(ids) == len(set(ids))


def test_pdf_output_has_a_text_layer(pipeline: OcrPipeline, two_pages: bytes) -> None:
    from engine_images import pdf_text

    outcome = run(pipeline, two_pages, options(OutputFormat.PDF))
    assert outcome.body.startswith(b"%PDF-")
    texts = pdf_text(outcome.body)
    assert len(texts) == 2
    assert [t.split() for t in texts] == [PAGE_TEXTS[0][0].split(), PAGE_TEXTS[1][0].split()]


# -- languages -----------------------------------------------------------------------------------


def test_german_umlauts_under_deu(pipeline: OcrPipeline) -> None:
    sentence = "Größere Äpfel über Straßen"
    outcome = run(pipeline, encode(text_image([sentence]), "PNG"), options(lang="deu"))
    assert outcome.result.pages[0].text == sentence
    assert outcome.result.language == "deu"
    assert json.loads(outcome.body)["text"] == sentence  # not escaped away


def test_language_resolution(pipeline: OcrPipeline) -> None:
    installed = pipeline.installed_languages()
    assert "eng" in installed and "deu" in installed and "osd" not in installed
    assert pipeline.resolve_lang("ENG+deu") == "eng+deu"
    assert pipeline.resolve_lang(" eng + eng ") == "eng"
    for bad in ("klingon", "eng+", "chi-sim", "osd", "../eng", ""):
        with pytest.raises(UnknownLanguage) as caught:
            pipeline.resolve_lang(bad)
        assert caught.value.param == "lang" and caught.value.status == 400
    with pytest.raises(UnknownLanguage, match="chi_sim"):
        pipeline.resolve_lang("chi-sim")  # normalised before it is reported


def test_multi_language_recognition(pipeline: OcrPipeline) -> None:
    outcome = run(pipeline, encode(text_image(["Straße and street"]), "PNG"), options(lang="eng+deu"))
    assert outcome.result.pages[0].text == "Straße and street"


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("psm", 0), ("psm", 2), ("psm", 14), ("oem", 7), ("oem", 0), ("dpi", 0)],  # oem 0 needs legacy models
)
def test_bad_engine_options_name_the_parameter(pipeline: OcrPipeline, field: str, value: int) -> None:
    with pytest.raises(InvalidParameter) as caught:
        run(pipeline, encode(text_image(["x"]), "PNG"), options(**{field: value}))
    assert caught.value.param == field


def test_corrupt_page_inside_the_pool_is_a_422_and_the_worker_survives(pipeline: OcrPipeline) -> None:
    data = encode(text_image(LINES), "PNG")
    with pytest.raises(UndecodableDocument):
        run(pipeline, data[: len(data) // 2], options())
    assert words_of(run(pipeline, data, options())) == WORDS


def test_page_limit_applies_to_the_pipeline(pipeline: OcrPipeline) -> None:
    data = multipage([text_image([str(n)]) for n in range(pipeline.settings.max_pages + 1)], "TIFF")
    with pytest.raises(TooManyPages):
        run(pipeline, data, options())


# -- both engines agree --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", [OutputFormat.JSON, OutputFormat.TSV, OutputFormat.HOCR, OutputFormat.TEXT, OutputFormat.ALTO]
)
def test_cli_engine_gives_the_same_result(pipeline: OcrPipeline, cli_pipeline: OcrPipeline, fmt: OutputFormat) -> None:
    data = multipage([text_image(PAGE_TEXTS[0]), text_image(LINES)], "TIFF")
    warm, cli = run(pipeline, data, options(fmt)), run(cli_pipeline, data, options(fmt))
    assert cli.result.engine.name == "pytesseract"
    if fmt is OutputFormat.JSON:
        assert [(w.text, w.bbox) for p in cli.result.pages for w in p.words] == [
            (w.text, w.bbox) for p in warm.result.pages for w in p.words
        ]
        assert len(warm.result.pages[0].words) == len(PAGE_TEXTS[0][0].split())
    else:
        assert cli.body.replace(b"\r", b"") == warm.body.replace(b"\r", b"")
        # Neither engine builds the word model for a non-JSON format; both still report confidence.
        for outcome in (warm, cli):
            assert [p.words for p in outcome.result.pages] == [[], []]
            assert all(p.confidence > 80 for p in outcome.result.pages)
        assert cli.result.confidence == pytest.approx(warm.result.confidence, abs=3)


PHOTOTEST = Path(__file__).resolve().parents[2].parent / "shared" / "ocr-corpus" / "phototest.tif"


def test_paragraphs_nest_between_blocks_and_lines_the_same_in_both_engines(
    pipeline: OcrPipeline, cli_pipeline: OcrPipeline
) -> None:
    """phototest.tif is one block of two paragraphs (3 and 5 lines); the blank line between them is kept."""
    data = PHOTOTEST.read_bytes()
    shapes = []
    for engine in (pipeline, cli_pipeline):
        page = run(engine, data, options()).result.pages[0]
        shapes.append([[len(paragraph.lines) for paragraph in block.paragraphs] for block in page.blocks])
        (block,) = page.blocks
        first, second = block.paragraphs
        assert first.text.endswith("of file format.") and second.text.startswith("The quick brown dog")
        assert block.text == first.text + "\n\n" + second.text
        assert "of file format.\n\nThe quick" in page.text
        assert block.lines == first.lines + second.lines
        as_json = json.loads(json.dumps(page.to_json()))
        assert [len(p["lines"]) for p in as_json["blocks"][0]["paragraphs"]] == [3, 5]
        assert PageResult.from_json(as_json).blocks == page.blocks, "what jobs store reads back the same"
    assert shapes == [[[3, 5]], [[3, 5]]]


def test_a_page_stored_before_paragraphs_reads_as_one_paragraph_per_block() -> None:
    """Jobs store each page's JSON; a job stored by the previous version has blocks with `lines`."""
    line = {
        "text": "a b",
        "confidence": 90.0,
        "bbox": [1, 2, 3, 4],
        "words": [{"text": "a", "confidence": 90.0, "bbox": [1, 2, 1, 4]}],
    }
    stored = {
        "number": 1,
        "width": 10,
        "height": 10,
        "text": "a b",
        "blocks": [{"text": "a b", "bbox": [0, 0, 9, 9], "lines": [line]}],
    }
    (block,) = PageResult.from_json(stored).blocks
    (paragraph,) = block.paragraphs
    assert paragraph.bbox == (0, 0, 9, 9) and [w.text for w in paragraph.lines[0].words] == ["a"]


def test_cli_engine_writes_alto_and_pdf(cli_pipeline: OcrPipeline, two_pages: bytes) -> None:
    from engine_images import pdf_text

    pdf = run(cli_pipeline, two_pages, options(OutputFormat.PDF)).body
    assert [t.split() for t in pdf_text(pdf)] == [PAGE_TEXTS[0][0].split(), PAGE_TEXTS[1][0].split()]
    alto = ET.fromstring(run(cli_pipeline, two_pages, options(OutputFormat.ALTO)).body)
    assert len(alto.findall(".//{http://www.loc.gov/standards/alto/ns-v3#}Page")) == 2


# -- the per-page API jobs use -------------------------------------------------------------------


def test_jobs_recognise_pages_separately_and_merge(pipeline: OcrPipeline) -> None:
    from engine_images import pdf_text

    data = multipage([text_image(lines) for lines in PAGE_TEXTS], "PDF")
    info = pipeline.inspect(data, options())
    assert (info.kind.value, info.page_count, info.pages) == ("pdf", 3, (1, 2, 3))
    formats = {OutputFormat.PDF, OutputFormat.HOCR, OutputFormat.TEXT, OutputFormat.TSV, OutputFormat.ALTO}

    async def recognise_all() -> list[PageOutcome]:
        return list(await asyncio.gather(*(pipeline.run_page(data, n, options(), formats) for n in (3, 1, 2))))

    pages = asyncio.run(recognise_all())
    stored = [PageOutcome.from_record(json.loads(json.dumps(p.to_record()))) for p in pages]  # as a job store would
    ordered = sorted(stored, key=lambda p: p.page.number)
    merged_pdf = pipeline.combine(ordered, OutputFormat.PDF, language="eng", sha256=info.sha256)
    assert [t.split() for t in pdf_text(merged_pdf)] == [lines[0].split() for lines in PAGE_TEXTS]
    text = pipeline.combine(ordered, OutputFormat.TEXT, language="eng", sha256=info.sha256).decode()
    assert [t.strip() for t in text.split("\f")] == [lines[0] for lines in PAGE_TEXTS]
    as_json = json.loads(pipeline.combine(ordered, OutputFormat.JSON, language="eng", sha256=info.sha256))
    assert [p["number"] for p in as_json["pages"]] == [1, 2, 3]
    assert as_json["sha256"] == info.sha256
    # the same merge as one synchronous request
    sync = run(pipeline, data, options(OutputFormat.TSV))
    assert pipeline.combine(ordered, OutputFormat.TSV, language="eng", sha256=info.sha256) == sync.body
    with pytest.raises(ValueError, match="without the hocr format"):
        pipeline.combine([PageOutcome(ordered[0].page, {})], OutputFormat.HOCR, language="eng", sha256="")


@pytest.mark.parametrize("size", [(300, 200), (1, 1), (3, 3000)])
@pytest.mark.parametrize("fmt", [OutputFormat.JSON, OutputFormat.ALTO, OutputFormat.PDF])
def test_blank_and_degenerate_pages_give_empty_results_not_errors(
    pipeline: OcrPipeline, cli_pipeline: OcrPipeline, size: tuple[int, int], fmt: OutputFormat
) -> None:
    from PIL import Image

    data = encode(Image.new("L", size, 255 if size[0] > 3 else 0), "PNG")
    for engine in (pipeline, cli_pipeline):
        outcome = run(engine, data, options(fmt, preprocess=PreprocessOptions()))
        assert outcome.result.text == "" and outcome.result.pages[0].words == []
        assert outcome.result.confidence == 0
        assert outcome.body  # a valid, empty document of the asked format


def test_rotated_page_is_read_and_boxes_land_on_the_page_the_client_sent(pipeline: OcrPipeline) -> None:
    lines = ["The quick brown fox jumps over", "the lazy dog near the river bank"] * 3
    rotated = text_image(lines).rotate(90, expand=True, fillcolor=255)  # text runs bottom to top
    outcome = run(pipeline, encode(rotated, "PNG"), options(preprocess=PreprocessOptions(mode="auto")))
    page = outcome.result.pages[0]
    assert page.text.split("\n") == lines
    assert (page.width, page.height) == rotated.size
    assert (page.image_width, page.image_height) == (rotated.height, rotated.width)  # recognised upright
    json.loads(outcome.body)  # the preprocessing report serialises
    first_line = page.blocks[0].lines[0].words
    for word in page.words:
        x, y, w, h = word.bbox
        assert x >= 0 and x + w <= page.width and y >= 0 and y + h <= page.height
        assert h > w or len(word.text) <= 2  # upright words become tall boxes on the rotated page
    # reading order along the first line goes up the page
    assert [w.bbox[1] for w in first_line] == sorted((w.bbox[1] for w in first_line), reverse=True)


def test_parallel_requests_each_get_their_own_text(pipeline: OcrPipeline) -> None:
    texts = [f"Order {n} paid with card {1000 + n * 37}" for n in range(8)]  # fits workers + queue

    async def all_at_once() -> list[OcrOutcome]:
        return list(await asyncio.gather(*(pipeline.run(encode(text_image([t]), "PNG"), options()) for t in texts)))

    outcomes = asyncio.run(all_at_once())
    assert [o.result.text for o in outcomes] == texts
    assert pipeline.stats().busy == 0 and pipeline.stats().queued == 0


# -- per-request work matches the format asked ---------------------------------------------------


@pytest.mark.parametrize("fmt", [OutputFormat.TEXT, OutputFormat.HOCR, OutputFormat.TSV])
def test_non_json_formats_skip_the_word_model_but_keep_the_confidence(pipeline: OcrPipeline, fmt: OutputFormat) -> None:
    data = encode(text_image(LINES), "PNG")
    as_json, other = run(pipeline, data, options()), run(pipeline, data, options(fmt))
    assert other.result.pages[0].blocks == () and other.result.pages[0].words == []
    assert as_json.result.pages[0].words and other.result.pages[0].text == as_json.result.pages[0].text
    # The engine's mean confidence (integer) against the mean of the JSON words' confidences.
    assert other.result.confidence == pytest.approx(as_json.result.confidence, abs=1.5)
    assert other.result.confidence > 80
    assert all(word in other.body.decode() for word in WORDS)


def test_a_blank_page_without_the_word_model_has_zero_confidence(pipeline: OcrPipeline) -> None:
    from PIL import Image

    outcome = run(pipeline, encode(Image.new("L", (400, 200), 255), "PNG"), options(OutputFormat.TEXT))
    assert outcome.result.pages[0].confidence == 0 and outcome.result.confidence == 0
    assert outcome.body == b""


def test_job_pages_asking_for_json_among_other_formats_carry_words(pipeline: OcrPipeline) -> None:
    data = encode(text_image(LINES), "PNG")
    with_json = asyncio.run(pipeline.run_page(data, 1, options(), {OutputFormat.JSON, OutputFormat.TEXT}))
    without = asyncio.run(pipeline.run_page(data, 1, options(), {OutputFormat.TEXT}))
    assert [w.text for w in with_json.page.words] == WORDS
    stored = PageOutcome.from_record(json.loads(json.dumps(with_json.to_record())))
    assert [w.text for w in stored.page.words] == WORDS
    assert without.page.words == [] and without.page.confidence > 80
    assert with_json.parts[OutputFormat.TEXT] == without.parts[OutputFormat.TEXT]


def test_a_digest_the_caller_already_has_is_reported_not_recomputed(pipeline: OcrPipeline) -> None:
    import hashlib

    data = encode(text_image(LINES), "PNG")
    computed = run(pipeline, data, options())
    assert computed.result.sha256 == hashlib.sha256(data).hexdigest()
    given = asyncio.run(pipeline.run(data, options(), sha256="f" * 64))
    assert given.result.sha256 == "f" * 64 and json.loads(given.body)["sha256"] == "f" * 64


@pytest.mark.parametrize("kind", ["PNG", "TIFF"])
def test_single_and_multi_page_kinds_report_the_same_errors(pipeline: OcrPipeline, kind: str) -> None:
    """PNG runs as one worker task, TIFF is opened first and fanned out: the client cannot tell."""
    data = encode(text_image(LINES), kind)
    with pytest.raises(InvalidParameter) as caught:
        run(pipeline, data, options(pages=(2,)))
    assert caught.value.param == "pages"
    with pytest.raises(UndecodableDocument):
        run(pipeline, data[: len(data) // 2], options())
    outcome = run(pipeline, data, options(OutputFormat.TEXT))
    assert outcome.body.decode().split() == WORDS
    assert outcome.result.timings.total_ms >= outcome.result.timings.recognize_ms > 0
