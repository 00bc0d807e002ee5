"""The accuracy benchmark's synthetic pages: known text, rendered, then degraded in controlled ways.

Pages are rendered from real English prose (public-domain passages) with DejaVu at a chosen DPI,
so the truth is exact; each degradation family imitates one way real scans and phone photos go
wrong. Everything is seeded: the same family and index always give the same image.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

Gray = NDArray[np.uint8]

FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
"""Installed by `scripts/install-system-deps.sh --dev` (fonts-dejavu-core)."""

PASSAGES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
    "want of a wife. However little known the feelings or views of such a man may be on his first entering "
    "a neighbourhood, this truth is so well fixed in the minds of the surrounding families.",
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, "
    "and nothing particular to interest me on shore, I thought I would sail about a little and see the "
    "watery part of the world. It is a way I have of driving off the spleen and regulating the circulation.",
    "When in the Course of human events, it becomes necessary for one people to dissolve the political "
    "bands which have connected them with another, and to assume among the powers of the earth, the "
    "separate and equal station to which the Laws of Nature and of Nature's God entitle them.",
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived "
    "in Liberty, and dedicated to the proposition that all men are created equal. Now we are engaged in a "
    "great civil war, testing whether that nation, or any nation so conceived, can long endure.",
    "When on board H.M.S. Beagle, as naturalist, I was much struck with certain facts in the distribution "
    "of the organic beings inhabiting South America, and in the geological relations of the present to "
    "the past inhabitants of that continent. These facts, as will be seen in the latter chapters of this "
    "volume, seemed to throw some light on the origin of species.",
    "In the year 1878 I took my degree of Doctor of Medicine of the University of London, and proceeded "
    "to Netley to go through the course prescribed for surgeons in the army. Having completed my studies "
    "there, I was duly attached to the Fifth Northumberland Fusiliers as Assistant Surgeon.",
    "Happy families are all alike; every unhappy family is unhappy in its own way. Everything was in "
    "confusion in the Oblonskys' house. The wife had discovered that the husband was carrying on an "
    "intrigue with a French girl, who had been a governess in their family.",
)


@dataclass(frozen=True)
class Sample:
    """One benchmark page: the image to recognise, its exact text and what was done to it."""

    family: str
    index: int
    image: Gray
    truth: str
    detail: str


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    if not Path(path).exists():
        raise SystemExit(f"font {path} missing: run scripts/install-system-deps.sh --dev (fonts-dejavu-core)")
    return ImageFont.truetype(path, size)


def render(index: int, *, dpi: int = 300, point_size: float = 11.0, width_inches: float = 5.0) -> tuple[Gray, str]:
    """Passage `index` as a clean page (black on white, 0.4-inch margins) and its text, line by line."""
    passage = PASSAGES[index % len(PASSAGES)]
    face = _font(FONTS[index % len(FONTS)], round(point_size * dpi / 72))
    margin = round(0.4 * dpi)
    usable = round(width_inches * dpi) - 2 * margin
    average = face.getlength("abcdefghijklmnopqrstuvwxyz") / 26
    lines = textwrap.wrap(passage, width=max(10, int(usable / average)))
    while max(face.getlength(line) for line in lines) > usable:
        lines = textwrap.wrap(passage, width=max(10, len(max(lines, key=len)) - 2))
    line_height = round(face.size * 1.45)
    size = (round(width_inches * dpi), 2 * margin + line_height * len(lines))
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    for number, line in enumerate(lines):
        draw.text((margin, margin + number * line_height), line, fill=0, font=face)
    return np.asarray(page, dtype=np.uint8).copy(), "\n".join(lines)


def _rotate(image: Gray, degrees: float) -> Gray:
    """Rotate counter-clockwise by `degrees` on a grown white canvas (a skewed scan)."""
    height, width = image.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(width * cos + height * sin), int(width * sin + height * cos)
    matrix[0, 2] += (new_width - width) / 2
    matrix[1, 2] += (new_height - height) / 2
    out = cv2.warpAffine(image, matrix, (new_width, new_height), flags=cv2.INTER_LINEAR, borderValue=255)
    return np.asarray(out, dtype=np.uint8)


def _skew(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    angle = (1.0, 2.5, 4.0, 6.0, 8.0, 3.0)[index % 6] * (1 if index % 2 == 0 else -1)
    return _rotate(image, angle), f"{angle:+.1f} deg"


def _quarter(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    code, name = ((cv2.ROTATE_90_CLOCKWISE, "90 cw"), (cv2.ROTATE_90_COUNTERCLOCKWISE, "90 ccw"))[index % 2]
    return np.asarray(cv2.rotate(image, code), dtype=np.uint8), name


def _half(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    return np.asarray(cv2.rotate(image, cv2.ROTATE_180), dtype=np.uint8), "180"


def _gaussian(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    sigma = (45.0, 60.0)[index % 2]
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8), f"sigma {sigma:.0f}"


def _salt_pepper(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    amount = (0.05, 0.10)[index % 2]
    out = image.copy()
    draw = rng.random(image.shape)
    out[draw < amount / 2] = 0
    out[draw > 1 - amount / 2] = 255
    return out, f"{amount:.0%} of pixels"


def _blur(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    sigma = (4.5, 5.5)[index % 2]
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), dtype=np.uint8), f"gaussian sigma {sigma}"


def _low_contrast(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    ink, paper = ((150, 172), (100, 120))[index % 2]
    out = ink + image.astype(np.float32) * (paper - ink) / 255.0
    out += rng.normal(0.0, 4.0, image.shape)
    return np.clip(out, 0, 255).astype(np.uint8), f"ink {ink}, paper {paper}"


def _uneven_light(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    height, width = image.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if index % 2 == 0:
        light = 1.0 - 0.75 * (xs / width) * (0.6 + 0.4 * ys / height)
        name = "diagonal shadow to 25%"
    else:
        cx, cy = width * 0.3, height * 0.4
        distance = np.hypot(xs - cx, ys - cy) / np.hypot(width, height)
        light = np.clip(1.0 - 1.6 * distance, 0.2, 1.0)
        name = "spotlight falling to 20%"
    return np.clip(image.astype(np.float32) * light, 0, 255).astype(np.uint8), name


def _jpeg(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    quality = (5, 8)[index % 2]
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return np.asarray(decoded, dtype=np.uint8), f"quality {quality} at 150 DPI"


def _phone_photo(image: Gray, rng: np.random.Generator, index: int) -> tuple[Gray, str]:
    """Several at once, as a hand-held photo of a page shows them: tilt, shading, grain, compression."""
    angle = (2.0, -3.5, 5.0)[index % 3]
    tilted = _rotate(image, angle)
    shaded, _ = _uneven_light(tilted, rng, index)
    grainy = np.clip(shaded.astype(np.float32) + rng.normal(0.0, 12.0, shaded.shape), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", grainy, [cv2.IMWRITE_JPEG_QUALITY, 35])
    assert ok
    photo = np.asarray(cv2.imdecode(data, cv2.IMREAD_GRAYSCALE), dtype=np.uint8)
    return photo, f"{angle:+.1f} deg, shading, grain sigma 12, jpeg 35"


Degradation = Callable[[Gray, np.random.Generator, int], tuple[Gray, str]]

FAMILIES: dict[str, Degradation | None] = {
    "clean": None,
    "skew 1-8 deg": _skew,
    "rotated 90": _quarter,
    "rotated 180": _half,
    "gaussian noise": _gaussian,
    "salt and pepper": _salt_pepper,
    "blur": _blur,
    "low contrast": _low_contrast,
    "uneven light": _uneven_light,
    "jpeg artefacts": _jpeg,
    "150 dpi": None,
    "phone photo (combined)": _phone_photo,
}
"""Family name -> degradation of a clean 300-DPI page (`150 dpi` renders at 150 DPI instead)."""


def sample(family: str, index: int) -> Sample:
    """Page `index` of `family`, identical on every run."""
    rng = np.random.default_rng(1000 * list(FAMILIES).index(family) + index)
    if family == "150 dpi":
        image, truth = render(index, dpi=150, point_size=8.0)
        return Sample(family, index, image, truth, "8 pt rendered at 150 DPI")
    image, truth = render(index)
    degrade = FAMILIES[family]
    if degrade is None:
        return Sample(family, index, image, truth, "300 DPI, no degradation")
    degraded, detail = degrade(image, rng, index)
    return Sample(family, index, degraded, truth, detail)
