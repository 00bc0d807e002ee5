"""Typed views of the service's JSON answers: the OCR document, a job, a progress event.

Each keeps the decoded JSON in `raw`, so members a newer service adds are never lost to a client
that does not know them yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BBox = tuple[int, int, int, int]
"""`(x, y, width, height)` in the pixels of the original page, as the service reports it."""

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float
    bbox: BBox


@dataclass(frozen=True)
class Line:
    text: str
    confidence: float
    bbox: BBox
    words: list[Word]


@dataclass(frozen=True)
class Block:
    text: str
    bbox: BBox
    lines: list[Line]


@dataclass(frozen=True)
class Page:
    number: int
    width: int
    height: int
    text: str
    confidence: float
    blocks: list[Block]
    preprocessing: Any
    timings: dict[str, float]

    @property
    def lines(self) -> list[Line]:
        return [line for block in self.blocks for line in block.lines]

    @property
    def words(self) -> list[Word]:
        return [word for line in self.lines for word in line.words]


@dataclass(frozen=True)
class OcrResult:
    """The JSON format's document, typed."""

    text: str
    confidence: float
    pages: list[Page]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OcrResult:
        return cls(text=data["text"], confidence=data["confidence"], pages=[_page(p) for p in data["pages"]], raw=data)


@dataclass(frozen=True)
class JobInfo:
    """A job object as `GET /v1/jobs/{id}` answers it."""

    id: str
    status: str
    pages_total: int
    pages_done: int
    error: dict[str, Any] | None
    raw: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobInfo:
        return cls(
            id=data["id"],
            status=data["status"],
            pages_total=int(data.get("pages_total") or 0),
            pages_done=int(data.get("pages_done") or 0),
            error=data.get("error"),
            raw=data,
        )


@dataclass(frozen=True)
class Event:
    """One server-sent event of `GET /v1/jobs/{id}/events`; `id` is what `Last-Event-ID` resumes from."""

    id: int
    event: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        return self.event in FINAL_STATUSES


class EventParser:
    """Turns the lines of a `text/event-stream` into `Event`s (the subset the service sends).

    Comments (keep-alives) and fields other than `id`, `event` and `data` are ignored, as the
    SSE specification asks of clients.
    """

    def __init__(self) -> None:
        self._id: str = ""
        self._event: str = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> Event | None:
        if not self._data or not self._id.isdigit():
            self._data, self._event = [], ""
            return None
        event = Event(id=int(self._id), event=self._event or "message", data=json.loads("\n".join(self._data)))
        self._data, self._event = [], ""
        return event


def _box(value: list[int]) -> BBox:
    return (int(value[0]), int(value[1]), int(value[2]), int(value[3]))


def _line(data: dict[str, Any]) -> Line:
    words = [Word(w["text"], w["confidence"], _box(w["bbox"])) for w in data["words"]]
    return Line(text=data["text"], confidence=data["confidence"], bbox=_box(data["bbox"]), words=words)


def _block_lines(block: dict[str, Any]) -> list[Line]:
    """A block's lines, whether the service nests them in paragraphs or not."""
    if "lines" in block:
        return [_line(line) for line in block["lines"]]
    return [_line(line) for paragraph in block.get("paragraphs", []) for line in paragraph["lines"]]


def _page(data: dict[str, Any]) -> Page:
    blocks = [
        Block(text=block["text"], bbox=_box(block["bbox"]), lines=_block_lines(block)) for block in data["blocks"]
    ]
    return Page(
        number=data["number"],
        width=data["width"],
        height=data["height"],
        text=data["text"],
        confidence=data["confidence"],
        blocks=blocks,
        preprocessing=data.get("preprocessing"),
        timings=data.get("timings", {}),
    )
