"""Structured logs: one JSON object per line (or plain text for a terminal), with the request id.

`configure_logging` is called once by the CLI (and by `build_app`, which is idempotent about
it) with `settings.log_format` and `settings.log_level`. The current request's id lives in a
context variable set by the request middleware, so every line logged while handling a
request — ours, uvicorn's or a library's — carries it without being passed around.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("catalyst_ocr_request_id", default=None)
"""Id of the request being handled in this context; None outside requests."""

_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName"}
    # uvicorn repeats its message with terminal colour codes for its own console formatter.
    | {"color_message"}
)
_HANDLER_NAME = "catalyst-ocr"
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)
"""What `json.dumps(entry, ensure_ascii=False, default=str)` builds on every call, built once."""


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "request_id", ...extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _JSON.encode(entry)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the same fields, for running in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES and not k.startswith("_")}
        request_id = REQUEST_ID.get()
        prefix = f"{_timestamp(record.created)} {record.levelname:<7} {record.name}"
        if request_id is not None:
            prefix += f" [{request_id}]"
        line = f"{prefix}: {record.getMessage()}"
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "info", log_format: str = "json", stream: TextIO | None = None) -> None:
    """Route every logger (ours, uvicorn's) through one handler on stderr in the chosen format.

    Calling it again replaces the handler it installed before instead of adding a second one.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Our own access log replaces uvicorn's (it knows the route template and the request id).
    logging.getLogger("uvicorn.access").disabled = True


def log_without_caller(
    logger: logging.Logger, level: int, msg: str, args: tuple[object, ...], extra: dict[str, Any]
) -> None:
    """`logger.log(level, msg, *args, extra=extra)` minus the walk up the stack for the caller's file
    and line, which no formatter here prints: for the access line written on every request."""
    if logger.isEnabledFor(level):
        logger.handle(logger.makeRecord(logger.name, level, "(unknown file)", 0, msg, args, None, extra=extra))


_current_second: tuple[int, str] = (-1, "")
"""The last whole second formatted by `_timestamp` (log lines come many per second)."""


def _timestamp(created: float) -> str:
    global _current_second
    second = int(created)
    cached = _current_second
    if cached[0] != second:
        cached = _current_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int(created % 1 * 1000):03d}Z"
