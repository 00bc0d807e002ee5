"""Request body -> (document bytes, raw options), with the size limit enforced while streaming.

`POST /v1/ocr` takes the document three ways: multipart/form-data (field `file`, options as
other fields), the raw bytes with their own Content-Type, or JSON `{"content": base64, ...}`.
A form-urlencoded label (what `curl --data-binary @scan.tiff` sends by default) is taken as a
raw body when the bytes are a supported document, and refused with 415 otherwise.
The body is never buffered past `max_upload_bytes`: a Content-Length over the limit is
refused before reading, and a streamed body is cut off with 413 the moment it exceeds it.
The document's real type is sniffed from its bytes later (`documents`), not taken from here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from ocr_service import documents
from ocr_service.errors import InvalidParameter, OcrError, PayloadTooLarge, UnsupportedMediaType
from ocr_service.http.params import RawValue, check_json_types

MAX_FORM_FIELDS = 64
"""Options are few; a form with more fields than this is not a real client."""
MAX_FORM_FIELD_BYTES = 4096
MAX_FILENAME_CHARS = 255
CLOSE = {"Connection": "close"}
"""Sent with a 413 for an unread body: the server then drops the connection instead of draining the rest."""
JSON_OVERHEAD_BYTES = 64 * 1024
"""Room for option members and whitespace around the base64 content of a JSON body."""
MAX_JSON_INTEGER_DIGITS = 18
"""No option is a number past this many digits (and it keeps to int64, like the store's columns)."""


@dataclass(frozen=True)
class ReceivedDocument:
    """What the body carried: the document and any options that travelled with it."""

    data: bytes
    options: Mapping[str, RawValue]
    filename: str = ""
    """The multipart file part's name (base name only, printable, at most 255 characters); jobs keep it."""


class BodyTimeout(OcrError):
    """The body did not arrive within the time limit (a stalled or trickling client)."""

    status, slug, title = 408, "request-timeout", "The request body arrived too slowly"


async def read_document(request: Request, max_bytes: int, *, time_limit: float | None = None) -> ReceivedDocument:
    """Read the document from whichever of the three body styles the request uses.

    With `time_limit`, a body still incomplete after that many seconds is a 408 and the
    connection is closed, so a client trickling bytes cannot hold a connection for ever.
    """
    try:
        async with asyncio.timeout(time_limit):
            return await _read_document(request, max_bytes)
    except TimeoutError:
        raise BodyTimeout(f"The body was not complete within {time_limit:g} s.", headers=CLOSE) from None


async def _read_document(request: Request, max_bytes: int) -> ReceivedDocument:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    try:
        if media_type == "multipart/form-data":
            received = await _read_multipart(request, max_bytes)
        elif media_type == "application/json" or media_type.endswith("+json"):
            received = await _read_json(request, max_bytes)
        elif media_type == "application/x-www-form-urlencoded":
            received = ReceivedDocument(_document_or_415(await read_limited(request, max_bytes)), {})
        else:
            received = ReceivedDocument(await read_limited(request, max_bytes), {})
    except ClientDisconnect:
        raise InvalidParameter("The client closed the connection before the body was complete.") from None
    if not received.data:
        raise InvalidParameter("The document is empty (0 bytes).", param="file")
    return received


FORM_URLENCODED_REFUSED = (
    "A form-urlencoded body cannot carry options, and this one is not a supported document "
    "(PNG, JPEG, TIFF, WebP, BMP, GIF or PDF). Send the file as multipart (curl -F file=@scan.png) "
    "or as the raw body with its own type (curl --data-binary @scan.png -H 'Content-Type: application/octet-stream')."
)


def _document_or_415(data: bytes) -> bytes:
    """`curl --data-binary @scan.tiff` labels the file form-urlencoded: a body that sniffs as a document is one.

    Anything else keeps the 415, and its detail names both ways to send a file.
    """
    if not data:
        return data  # the caller answers 400 "empty"
    try:
        documents.sniff(data)
    except UnsupportedMediaType:
        raise UnsupportedMediaType(FORM_URLENCODED_REFUSED) from None
    return data


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The whole body, or `PayloadTooLarge` as soon as it is known to exceed `max_bytes`.

    The same checks as `limited_stream`, without a second async generator around Starlette's
    (this runs for every request), and a body that arrived in one chunk is not copied again.
    """
    _check_declared_length(request, max_bytes)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLarge(f"The body exceeds the limit of {max_bytes} bytes.", headers=CLOSE)
        if chunk:
            chunks.append(chunk)
    if len(chunks) == 1 and type(chunks[0]) is bytes:
        return chunks[0]
    return b"".join(chunks)


async def limited_stream(request: Request, max_bytes: int) -> AsyncGenerator[bytes, None]:
    """The body's chunks as they arrive; raises `PayloadTooLarge` up front or mid-stream."""
    _check_declared_length(request, max_bytes)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLarge(f"The body exceeds the limit of {max_bytes} bytes.", headers=CLOSE)
        if chunk:
            yield chunk


def _check_declared_length(request: Request, max_bytes: int) -> None:
    """A Content-Length over the limit is refused before a byte of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The body is {int(declared)} bytes; the limit is {max_bytes}.", headers=CLOSE)


async def _read_multipart(request: Request, max_bytes: int) -> ReceivedDocument:
    parser = MultiPartParser(
        request.headers,
        limited_stream(request, max_bytes),
        max_files=1,
        max_fields=MAX_FORM_FIELDS,
        max_part_size=MAX_FORM_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidParameter(f"The multipart body is malformed: {exc.message}", param="file") from None
    try:
        options: dict[str, RawValue] = {}
        document: bytes | None = None
        filename = ""
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "file":
                    raise InvalidParameter(f"Send the document in the form field `file`, not {name!r}.", param=name)
                document = await value.read()
                filename = safe_filename(value.filename or "")
            elif name == "file":
                raise InvalidParameter(
                    "The `file` field must be a file part (with a filename), e.g. curl -F file=@scan.png.", param="file"
                )
            elif name in options:
                raise InvalidParameter(f"Option {name!r} is given more than once.", param=name)
            else:
                options[name] = value
    finally:
        await form.close()
    if document is None:
        raise InvalidParameter("The multipart body has no `file` field with the document.", param="file")
    return ReceivedDocument(document, options, filename)


def safe_filename(name: str) -> str:
    """The client's file name as a label: no directories, no control characters, bounded length."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(char for char in base if char.isprintable())[:MAX_FILENAME_CHARS]


class _DuplicateMember(ValueError):
    """A JSON object names one member twice: which value counts would be a guess."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    members: dict[str, object] = {}
    for name, value in pairs:
        if name in members:
            raise _DuplicateMember(name)
        members[name] = value
    return members


def _bounded_int(text: str) -> int:
    """Options are small numbers; a longer integer is refused before Python converts it (4300-digit limit)."""
    if len(text.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
        raise ValueError(f"an integer of {len(text)} characters; at most {MAX_JSON_INTEGER_DIGITS} digits are accepted")
    return int(text)


def parse_json_body(body: bytes) -> object:
    """`json.loads` with every way it can fail on hostile input turned into 400 `invalid-parameter`.

    Besides syntax errors: nesting deep enough to exhaust the parser's recursion (RecursionError),
    integers too long for Python to convert (ValueError), and a member named twice, which the API
    treats like an option given twice (400, as the docs say), not as "the last one wins".
    """
    try:
        return json.loads(body, object_pairs_hook=_unique_members, parse_int=_bounded_int)
    except _DuplicateMember as exc:
        raise InvalidParameter(f"Option {exc.name!r} is given more than once.", param=exc.name) from None
    except RecursionError:
        raise InvalidParameter("The JSON body is nested too deeply.", param="content") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameter(f"The JSON body does not parse: {exc}.", param="content") from None
    except ValueError as exc:  # from _bounded_int
        raise InvalidParameter(f"The JSON body does not parse: {exc}.", param="content") from None


async def _read_json(request: Request, max_bytes: int) -> ReceivedDocument:
    # base64 grows the document by 4/3; the limit applies to the decoded document.
    body = await read_limited(request, max_bytes * 4 // 3 + 4 + JSON_OVERHEAD_BYTES)
    payload = parse_json_body(body)
    if not isinstance(payload, dict):
        raise InvalidParameter("The JSON body must be an object with a base64 `content` member.", param="content")
    content = payload.pop("content", None)
    if not isinstance(content, str):
        raise InvalidParameter("The JSON body needs `content`: the document as a base64 string.", param="content")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("`content` is not valid base64.", param="content") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The decoded document is {len(data)} bytes; the limit is {max_bytes}.")
    options: dict[str, RawValue] = {}
    for name, value in payload.items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise InvalidParameter(f"Option {name!r} must be a string, number or boolean.", param=str(name))
        options[str(name)] = value
    check_json_types(options)
    return ReceivedDocument(data, options)
