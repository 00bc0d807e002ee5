"""Where a page may be cut and how its pieces are joined (`engine/regions.py`): pure, no engine."""

from __future__ import annotations

import re

import pytest

from ocr_service.engine.model import Block, Line, Paragraph, Word
from ocr_service.engine.regions import (
    LayoutBlock,
    PageLayout,
    Region,
    merge_alto,
    merge_blocks,
    merge_hocr,
    merge_text,
    merge_tsv,
    plan_regions,
    scale_layout,
    splittable,
)
from ocr_service.settings import Settings, SettingsError


def column(lines: int, *, left: int = 100, top: int = 100, pitch: int = 50, height: int = 30) -> LayoutBlock:
    """A block of `lines` lines, each `height` px tall, one every `pitch` px."""
    boxes = tuple((left, top + i * pitch, left + 1500, top + i * pitch + height) for i in range(lines))
    return LayoutBlock((left, top, left + 1500, boxes[-1][3]), 1, boxes)


def test_one_column_is_cut_between_lines_into_the_parts_asked_for() -> None:
    block = column(40)
    layout = PageLayout(2480, 3508, (block,))
    regions = plan_regions(layout, 2)
    assert [region.lines for region in regions] == [20, 20]
    first, second = regions
    assert first.edges[3] == second.edges[1], "the cut is one line: no gap, no overlap"
    cut = first.edges[3]
    assert block.lines[19][3] < cut < block.lines[20][1], "half-way between two lines, through no glyph"
    assert first.edges[1] == block.edges[1] - 4 and second.edges[3] == block.edges[3] + 4, "outer edges padded"
    assert first.edges[0] == block.edges[0] - 4 and first.edges[2] == block.edges[2] + 4


def test_padding_stays_on_the_page() -> None:
    block = column(10, left=0, top=0)
    regions = plan_regions(PageLayout(1500, 500, (block,)), 2)
    assert regions[0].edges[:2] == (0, 0)
    assert regions[-1].edges[2] <= 1500 and regions[-1].edges[3] <= 500


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        (PageLayout(2480, 3508, (column(7),)), "fewer than two regions of four lines"),
        (PageLayout(2480, 3508, (column(20), column(20, top=600))), "two blocks overlap"),
        (
            PageLayout(
                2480,
                3508,
                (LayoutBlock((100, 100, 2000, 400), 1, tuple((100, 100 + i, 2000, 130 + i) for i in range(10))),),
            ),
            "lines overlap: side-by-side text",
        ),
        (PageLayout(2480, 3508, (LayoutBlock((100, 100, 2000, 2000), 12, column(40).lines),)), "no text block"),
    ],
)
def test_pages_whose_reading_order_rectangles_cannot_carry_are_recognised_whole(layout: PageLayout, why: str) -> None:
    assert plan_regions(layout, 4) == (), why


def test_one_part_means_whole() -> None:
    assert plan_regions(PageLayout(2480, 3508, (column(40),)), 1) == ()


def test_blocks_share_the_parts_by_their_lines_and_images_are_left_out() -> None:
    text = column(30)
    picture = LayoutBlock((100, 1700, 1600, 2400), 12, ())
    caption = column(10, top=2500)
    regions = plan_regions(PageLayout(2480, 3508, (text, picture, caption)), 4)
    assert [region.block for region in regions] == [0, 0, 0, 2]
    assert sum(region.lines for region in regions) == 40
    assert splittable(PageLayout(2480, 3508, (text, picture, caption)))


def test_a_layout_analysed_at_half_size_comes_back_in_page_coordinates() -> None:
    small = PageLayout(1240, 1754, (LayoutBlock((50, 60, 700, 90), 1, ((50, 60, 700, 90),)),))
    layout = scale_layout(small, 0.5, 2480, 3508)
    assert layout.blocks[0].edges == (100, 120, 1400, 180)
    assert layout.blocks[0].lines == ((100, 120, 1400, 180),)
    assert (layout.width, layout.height) == (2480, 3508)


REGIONS = (Region((0, 0, 10, 10), 0, 5), Region((0, 10, 10, 20), 0, 5), Region((0, 30, 10, 40), 2, 5))


def test_text_of_one_block_runs_on_and_blocks_are_separated_by_a_blank_line() -> None:
    merged = merge_text(["one\ntwo\n\n", "three\n\n", "caption\n\n"], REGIONS)
    assert merged == "one\ntwo\nthree\n\ncaption\n"
    assert merge_text(["", "", ""], REGIONS) == ""


def word_block(text: str, top: int) -> Block:
    line = Line((Word(text, 90.0, (0, top, 10, 8)),), (0, top, 10, 8))
    return Block((Paragraph((line,), (0, top, 10, 8)),), (0, top, 10, 8))


def test_the_word_model_makes_regions_of_one_block_one_block_again() -> None:
    blocks = merge_blocks([(word_block("a", 0),), (word_block("b", 12),), (word_block("c", 32),)], REGIONS)
    assert len(blocks) == 2
    assert [len(block.paragraphs) for block in blocks] == [2, 1]
    assert blocks[0].bbox == (0, 0, 10, 20)


def tsv(block_row: str, rows: list[str]) -> str:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
    return header + "1\t1\t0\t0\t0\t0\t0\t0\t10\t10\t-1\t\n" + block_row + "".join(rows)


def test_tsv_regions_of_one_block_keep_one_block_number_and_paragraphs_run_on() -> None:
    first = tsv("2\t1\t1\t0\t0\t0\t0\t0\t10\t10\t-1\t\n", ["4\t1\t1\t1\t1\t0\t0\t0\t10\t8\t-1\t\n"])
    second = tsv("2\t1\t1\t0\t0\t0\t0\t12\t10\t8\t-1\t\n", ["4\t1\t1\t1\t1\t0\t0\t12\t10\t8\t-1\t\n"])
    third = tsv("2\t1\t1\t0\t0\t0\t0\t32\t10\t8\t-1\t\n", ["4\t1\t1\t1\t1\t0\t0\t32\t10\t8\t-1\t\n"])
    rows = [line.split("\t") for line in merge_tsv([first, second, third], REGIONS, 100, 200).splitlines()]
    assert rows[0][:10] == ["1", "1", "0", "0", "0", "0", "0", "0", "100", "200"], "one page row, the page's box"
    blocks = [row for row in rows if row[0] == "2"]
    assert [(row[2], row[6:10]) for row in blocks] == [("1", ["0", "0", "10", "20"]), ("2", ["0", "32", "10", "8"])]
    lines = [(row[2], row[3]) for row in rows if row[0] == "4"]
    assert lines == [("1", "1"), ("1", "2"), ("2", "1")]


def test_hocr_regions_become_one_page_with_unique_ids() -> None:
    def page(words: list[str]) -> str:
        spans = "".join(
            f"<span class='ocrx_word' id='word_1_{i + 1}' title='bbox 0 0 1 1'>{w}</span>" for i, w in enumerate(words)
        )
        return (
            "  <div class='ocr_page' id='page_1' title='image \"\"; bbox 0 10 50 20; ppageno 0'>\n"
            f"   <div class='ocr_carea' id='block_1_1'><p class='ocr_par' id='par_1_1'>"
            f"<span class='ocr_line' id='line_1_1'>{spans}</span></p></div>\n"
            "  </div>\n"
        )

    merged = merge_hocr([page(["a", "b"]), page(["c"])], 300, 400)
    assert merged.count("class='ocr_page'") == 1
    assert "bbox 0 0 300 400" in merged
    ids = re.findall(r"id='(\w+)'", merged)
    assert len(ids) == len(set(ids))
    assert re.findall(r">(\w)</span>", merged) == ["a", "b", "c"]


def alto(top: int, words: list[str]) -> str:
    strings = "".join(f'<String ID="string_{i}" HPOS="0" VPOS="{top}" CONTENT="{w}"/>' for i, w in enumerate(words))
    return (
        '<?xml version="1.0"?><alto><Layout>\n<Page WIDTH="10" HEIGHT="10" PHYSICAL_IMG_NR="0" ID="page_0">\n'
        '<PrintSpace HPOS="0" VPOS="0" WIDTH="10" HEIGHT="10">\n'
        f'<ComposedBlock ID="cblock_0" HPOS="0" VPOS="{top}" WIDTH="10" HEIGHT="8">'
        f'<TextBlock ID="block_0"><TextLine ID="line_0">{strings}</TextLine></TextBlock>\n</ComposedBlock>\n'
        "</PrintSpace>\n</Page>\n</Layout></alto>\n"
    )


def test_alto_regions_become_one_page_and_one_block_of_a_cut_layout_block() -> None:
    merged = merge_alto([alto(0, ["a", "b"]), alto(12, ["c"]), alto(32, ["d"])], REGIONS, 300, 400)
    assert merged.count("<Page ") == 1 and '<Page WIDTH="300" HEIGHT="400"' in merged
    assert '<PrintSpace HPOS="0" VPOS="0" WIDTH="300" HEIGHT="400"' in merged
    assert re.findall(r"<ComposedBlock [^>]*>", merged) == [
        '<ComposedBlock ID="cblock_0" HPOS="0" VPOS="0" WIDTH="10" HEIGHT="20">',
        '<ComposedBlock ID="cblock_1" HPOS="0" VPOS="32" WIDTH="10" HEIGHT="8">',
    ]
    assert merged.count("</ComposedBlock>") == 2
    assert re.findall(r'CONTENT="(\w)"', merged) == ["a", "b", "c", "d"]
    ids = re.findall(r' ID="([^"]+)"', merged)
    assert len(ids) == len(set(ids))
    assert merged.endswith("</alto>\n")


@pytest.mark.parametrize(("raw", "limit"), [("auto", 0), ("AUTO", 0), ("off", 1), ("1", 1), ("3", 3)])
def test_page_parallelism_setting(raw: str, limit: int) -> None:
    assert Settings.from_env({"OCR_PAGE_PARALLELISM": raw}).page_parallelism == limit


@pytest.mark.parametrize("raw", ["0", "-2", "many", ""])
def test_page_parallelism_setting_refuses_nonsense(raw: str) -> None:
    with pytest.raises(SettingsError, match="OCR_PAGE_PARALLELISM"):
        Settings.from_env({"OCR_PAGE_PARALLELISM": raw})
