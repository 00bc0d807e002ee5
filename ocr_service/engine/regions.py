"""One page recognised on several workers: where to cut it, and how to put the pieces back together.

Pure functions, no engine: the `capi` recognizer supplies a `PageLayout` (Tesseract's own
`AnalyseLayout` of the page it is about to recognise), `plan_regions` decides whether and where the
page may be cut, each worker recognises one `Region` of the same pixels (`SetRectangle`, boxes stay
in page coordinates), and the `merge_*` functions join the pieces in reading order into the one
`PageRender` a whole-page recognition would have given: text, the word model, hOCR and TSV.

When a cut is safe (measured on the accuracy benchmark: `benchmarks/page_parallel.py --accuracy`):
only pages whose layout is a top-to-bottom stack of separate blocks. Any two blocks whose boxes
overlap (columns wrapped around a picture, a caption inside an image region, a block inside
another) or a block whose lines overlap (side-by-side text) mean Tesseract's reading order
depends on more than rectangles can carry, so such a page is recognised whole. A region holds
whole lines of one block (cut half-way between two lines), and is recognised as one uniform
block of text (PSM 6): the columns were already found on the whole page.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

from ocr_service.engine.model import BBox, Block, union

Edges = tuple[int, int, int, int]
"""left, top, right, bottom (Tesseract's page iterator order); `BBox` is left, top, width, height."""

REGION_PSM = 6
"""A region is one block of uniform text: the page's layout was analysed before it was cut."""

REGION_PAD = 4
"""Pixels added around a block's outer edges (not at cuts between lines): Tesseract's block box is
tight on the ink, and a region flush with its glyphs loses their anti-aliased edge pixels."""

MIN_LINES_PER_REGION = 4
"""Below this a region costs more in set-up (thresholding, line finding) than it saves: measured
on 300-DPI pages, a receipt line or a short block is recognised in one piece."""

TEXT_BLOCK_KINDS = frozenset(range(1, 9))
"""Tesseract's `PolyBlockType` values that hold text (flowing, heading, pull-out, equations,
table, vertical, caption). 0 is unknown; 9 and above are images, rules and noise."""


@dataclass(frozen=True)
class LayoutBlock:
    edges: Edges
    kind: int
    lines: tuple[Edges, ...]


@dataclass(frozen=True)
class PageLayout:
    width: int
    height: int
    blocks: tuple[LayoutBlock, ...]

    @property
    def line_count(self) -> int:
        return sum(len(block.lines) for block in self.blocks if block.kind in TEXT_BLOCK_KINDS)


@dataclass(frozen=True)
class Region:
    """Part of a page recognised on its own: `edges` in page pixels, `block` the layout block it belongs to."""

    edges: Edges
    block: int
    lines: int


def scale_layout(layout: PageLayout, factor: float, width: int, height: int) -> PageLayout:
    """A layout analysed on a page resized by `factor`, in the coordinates of the `width` x `height` page."""

    def edges(raw: Edges) -> Edges:
        left, top, right, bottom = raw
        return (
            max(0, int(left / factor)),
            max(0, int(top / factor)),
            min(width, round(right / factor)),
            min(height, round(bottom / factor)),
        )

    blocks = tuple(
        LayoutBlock(edges(block.edges), block.kind, tuple(edges(line) for line in block.lines))
        for block in layout.blocks
    )
    return PageLayout(width, height, blocks)


def _overlap(a: Edges, b: Edges) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def splittable(layout: PageLayout) -> bool:
    """True when rectangles can carry this page's reading order (see the module docstring)."""
    blocks = layout.blocks
    if not any(block.kind in TEXT_BLOCK_KINDS for block in blocks):
        return False
    for index, block in enumerate(blocks):
        if any(_overlap(block.edges, other.edges) for other in blocks[index + 1 :]):
            return False
        if block.kind in TEXT_BLOCK_KINDS:
            lines = block.lines
            if any(lower[1] < upper[3] for upper, lower in itertools.pairwise(lines)):
                return False
    return True


def plan_regions(
    layout: PageLayout, parts: int, min_lines: int = MIN_LINES_PER_REGION, pad: int = REGION_PAD
) -> tuple[Region, ...]:
    """Cut the page into about `parts` regions of whole lines, in reading order; () = recognise it whole.

    Each text block gets a share of `parts` in proportion to its lines, and is cut only into groups
    of at least `min_lines`; the cut between two groups lies half-way between their lines, so no
    glyph is sliced. Blocks without text are left out: a whole-page recognition reads nothing there.
    A block's outer edges get `pad` pixels (within the page); cuts get none, so regions never overlap.
    """
    if parts < 2 or layout.line_count < 2 * min_lines or not splittable(layout):
        return ()
    total = layout.line_count
    regions: list[Region] = []
    for index, block in enumerate(layout.blocks):
        if block.kind not in TEXT_BLOCK_KINDS or not block.lines:
            continue
        lines = block.lines
        groups = max(1, min(round(parts * len(lines) / total), len(lines) // min_lines))
        size = math.ceil(len(lines) / groups)
        left, top, right, bottom = block.edges
        left, right = max(0, left - pad), min(layout.width, right + pad)
        top, bottom = max(0, top - pad), min(layout.height, bottom + pad)
        for start in range(0, len(lines), size):
            group = lines[start : start + size]
            upper = top if start == 0 else (lines[start - 1][3] + group[0][1]) // 2
            end = start + len(group)
            lower = bottom if end >= len(lines) else (group[-1][3] + lines[end][1]) // 2
            regions.append(Region((left, upper, right, lower), index, len(group)))
    return tuple(regions) if len(regions) > 1 else ()


# -- putting the pieces back together -----------------------------------------------------------


def merge_text(texts: list[str], regions: tuple[Region, ...]) -> str:
    """Region texts in order: lines of one block run on, blocks are separated by a blank line.

    That is how Tesseract writes a whole page (`GetUTF8Text`: one line per line, a blank line
    after each paragraph); a paragraph that a cut went through stays one paragraph.
    """
    pieces: list[str] = []
    for index, (text, region) in enumerate(zip(texts, regions, strict=True)):
        body = text.rstrip("\n")
        if not body:
            continue
        same_block = index > 0 and regions[index - 1].block == region.block and pieces
        if pieces:
            pieces.append("\n" if same_block else "\n\n")
        pieces.append(body)
    return "".join(pieces) + "\n" if pieces else ""


def merge_blocks(pieces: list[tuple[Block, ...]], regions: tuple[Region, ...]) -> tuple[Block, ...]:
    """The word model: the blocks of regions cut from one layout block become that one block again."""
    merged: list[Block] = []
    previous: int | None = None
    for blocks, region in zip(pieces, regions, strict=True):
        if not blocks:
            continue
        paragraphs = tuple(paragraph for block in blocks for paragraph in block.paragraphs)
        if previous == region.block and merged:
            last = merged.pop()
            paragraphs = last.paragraphs + paragraphs
            merged.append(Block(paragraphs, union([last.bbox, *(block.bbox for block in blocks)])))
        else:
            merged.append(Block(paragraphs, union([block.bbox for block in blocks])))
        previous = region.block
    return tuple(merged)


_HOCR_ID = re.compile(r"id='(block|par|line|word)_(\d+)_(\d+)'")
_HOCR_PAGE = re.compile(r"^\s*<div class='ocr_page'[^>]*>\n?", re.MULTILINE)
_HOCR_PAGE_BBOX = re.compile(r"(<div class='ocr_page'[^>]*?bbox )\d+ \d+ \d+ \d+")


def merge_hocr(parts: list[str], width: int, height: int) -> str:
    """One `ocr_page` div from the regions' hOCR: ids numbered through the page, the page's own bbox.

    Each region's `GetHOCRText` is a whole page div whose bbox is the region and whose ids start
    at 1 again; element boxes are already in page coordinates.
    """
    counters = {"block": 0, "par": 0, "line": 0, "word": 0}

    def renumber(match: re.Match[str]) -> str:
        kind = match.group(1)
        counters[kind] += 1
        return f"id='{kind}_{match.group(2)}_{counters[kind]}'"

    head = ""
    bodies: list[str] = []
    for part in parts:
        found = _HOCR_PAGE.search(part)
        if found is None:
            continue
        if not head:
            head = _HOCR_PAGE_BBOX.sub(rf"\g<1>0 0 {width} {height}", found.group(0))
        body = part[found.end() :]
        closing = body.rstrip().rfind("</div>")  # the page div's own end
        bodies.append(_HOCR_ID.sub(renumber, body[:closing]))
    if not head:
        return parts[0] if parts else ""
    return head + "".join(bodies) + "  </div>\n"


def merge_tsv(parts: list[str], regions: tuple[Region, ...], width: int, height: int) -> str:
    """The regions' TSV rows as one page, numbered as a whole-page recognition numbers them.

    One page row (level 1) with the page's box; block numbers run on through the page, except that
    the regions cut from one layout block stay one block (like `merge_blocks`): their block rows
    become one row with the union of their boxes, and their paragraph numbers run on.
    """
    page_row: list[str] | None = None
    rows: list[list[str]] = []
    block_rows: dict[int, list[str]] = {}
    last_block = last_par = 0
    """The merged numbers of the last block written so far and of its last paragraph."""
    previous: Region | None = None
    for part, region in zip(parts, regions, strict=True):
        continues = previous is not None and previous.block == region.block
        base = last_block - 1 if continues else last_block
        par_base = last_par if continues else 0
        for line in part.splitlines():
            cells = line.split("\t")
            if len(cells) < 12 or not cells[0].isdigit():
                continue
            if cells[0] == "1":
                if page_row is None:
                    page_row = [*cells[:6], "0", "0", str(width), str(height), *cells[10:]]
                continue
            local, par = int(cells[2]), int(cells[3])
            merged = base + local
            if continues and local == 1:
                if cells[0] == "2":
                    _widen(block_rows[merged], cells)
                    continue
                par += par_base
            cells[2], cells[3] = str(merged), str(par)
            if cells[0] == "2":
                block_rows[merged] = cells
            if merged > last_block:
                last_block, last_par = merged, 0
            if merged == last_block:
                last_par = max(last_par, par)
            rows.append(cells)
        if last_block > base:
            previous = region
    if page_row is None:
        return "".join(parts)
    return "\n".join("\t".join(cells) for cells in [page_row, *rows]) + "\n"


def _widen(row: list[str], other: list[str]) -> None:
    """Make TSV `row`'s box (cells 6-9: left, top, width, height) the union of its own and `other`'s."""
    row[6:10] = [str(value) for value in union([_tsv_box(row), _tsv_box(other)])]


def _tsv_box(cells: list[str]) -> BBox:
    return (int(cells[6]), int(cells[7]), int(cells[8]), int(cells[9]))


_ALTO_PRINT_SPACE = re.compile(r"(<PrintSpace\b[^>]*>)(.*?)(\s*</PrintSpace>)", re.DOTALL)
_ALTO_PAGE_SIZE = re.compile(r'(<(?:Page|PrintSpace)\b[^>]*?\bWIDTH=")\d+(" HEIGHT=")\d+(")')
_ALTO_ELEMENT_ID = re.compile(r'\bID="(cblock|block|line|string)_(\d+)"')
_ALTO_COMPOSED = re.compile(r'<ComposedBlock ID="[^"]*" HPOS="(\d+)" VPOS="(\d+)" WIDTH="(\d+)" HEIGHT="(\d+)">')
_ALTO_COMPOSED_END = "</ComposedBlock>"


def merge_alto(parts: list[str], regions: tuple[Region, ...], width: int, height: int) -> str:
    """The regions' ALTO documents as one page: one `Page` and `PrintSpace` of the page's size, ids numbered
    through the page, and the regions cut from one layout block one `ComposedBlock` again (its box the union).

    Tesseract writes one ALTO document per recognition: `Page`/`PrintSpace` sized like the region,
    a `ComposedBlock` per block and a `TextBlock` per paragraph, boxes in page coordinates.
    """
    found = [(part, _ALTO_PRINT_SPACE.search(part)) for part in parts]
    usable = [(part, match, region) for (part, match), region in zip(found, regions, strict=True) if match]
    if not usable:
        return parts[0] if parts else ""
    counters = {"cblock": 0, "block": 0, "line": 0, "string": 0}

    def renumber(match: re.Match[str]) -> str:
        kind = match.group(1)
        number = counters[kind]
        counters[kind] += 1
        return f'ID="{kind}_{number}"'

    body = ""
    previous: Region | None = None
    for _, match, region in usable:
        content = match.group(2)
        if previous is not None and previous.block == region.block and body.rstrip().endswith(_ALTO_COMPOSED_END):
            opening = _ALTO_COMPOSED.search(content)
            last_open = list(_ALTO_COMPOSED.finditer(body))
            if opening is not None and last_open:
                kept = last_open[-1]
                widened = _alto_union(kept, opening)
                body = body[: kept.start()] + widened + body[kept.end() :]
                body = body.rstrip()[: -len(_ALTO_COMPOSED_END)].rstrip()
                content = content[opening.end() :]
        body += _ALTO_ELEMENT_ID.sub(renumber, content)
        previous = region
    first_part, first_match, _ = usable[0]
    head = _ALTO_PAGE_SIZE.sub(rf"\g<1>{width}\g<2>{height}\g<3>", first_part[: first_match.start(2)])
    return head + body + first_part[first_match.start(3) :]


def _alto_union(kept: re.Match[str], other: re.Match[str]) -> str:
    """The `ComposedBlock` opening tag of `kept` with a box that also covers `other`'s."""
    boxes: list[BBox] = [(int(m[1]), int(m[2]), int(m[3]), int(m[4])) for m in (kept, other)]
    left, top, width, height = union(boxes)
    return re.sub(
        r'HPOS="\d+" VPOS="\d+" WIDTH="\d+" HEIGHT="\d+"',
        f'HPOS="{left}" VPOS="{top}" WIDTH="{width}" HEIGHT="{height}"',
        kept.group(0),
        count=1,
    )
