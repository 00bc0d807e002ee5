"""`catalyst-ocr`: `serve` runs the HTTP service, `ocr FILE...` recognises files without a server.

Argument parsing and wiring only. Settings come from `OCR_*` variables, and flags override
them. `ocr` goes through the same pipeline and the same option parser (`http.params`) as
`POST /v1/ocr`, so a bad option fails with the same message. Exit codes: 0 success,
1 a document failed (the error is printed), 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from ocr_service import __version__
from ocr_service.errors import OcrError
from ocr_service.http.params import RawValue, parse_options
from ocr_service.logs import configure_logging
from ocr_service.options import PREPROCESS_STEPS, OutputFormat
from ocr_service.settings import Settings, SettingsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

FILE_EXTENSIONS = {
    OutputFormat.JSON: ".json",
    OutputFormat.TEXT: ".txt",
    OutputFormat.HOCR: ".hocr",
    OutputFormat.TSV: ".tsv",
    OutputFormat.ALTO: ".xml",
    OutputFormat.PDF: ".pdf",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catalyst-ocr",
        description="Catalyst OCR: Tesseract OCR as an HTTP service or on the command line. "
        "Settings come from OCR_* environment variables (see .env.example); flags override them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service (one process; concurrency is the engine pool)")
    serve.add_argument("--host", help="address to listen on (OCR_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (OCR_PORT)")
    serve.add_argument("--workers", type=int, help="parallel recognitions, 0 = one per usable CPU (OCR_WORKERS)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="(OCR_LOG_LEVEL)")

    ocr = commands.add_parser("ocr", help="recognise files and print or write the result")
    ocr.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="image (PNG, JPEG, TIFF, WebP, BMP, GIF) or PDF; - reads standard input",
    )
    ocr.add_argument("--lang", help="language(s), e.g. eng or eng+deu (default OCR_DEFAULT_LANG)")
    ocr.add_argument("--psm", help="page segmentation mode 0-13")
    ocr.add_argument("--oem", help="engine mode 0-3")
    ocr.add_argument("--dpi", help="PDF rasterisation resolution")
    ocr.add_argument("--pages", help="pages to recognise, e.g. 1-3,7")
    ocr.add_argument("--format", choices=[fmt.value for fmt in OutputFormat], default=OutputFormat.TEXT.value)
    ocr.add_argument("--preprocess", choices=["auto", "none"], help="default OCR_DEFAULT_PREPROCESS")
    for step in PREPROCESS_STEPS:
        ocr.add_argument(
            f"--{step}", dest=step, action=argparse.BooleanOptionalAction, default=None, help=f"force {step} on/off"
        )
    ocr.add_argument(
        "--output",
        "-o",
        type=Path,
        help="file to write (one input), or directory for one file per input; default standard output",
    )
    ocr.add_argument("--workers", type=int, help="parallel recognitions (OCR_WORKERS)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"catalyst-ocr: invalid setting: {exc}", file=sys.stderr)
        return EXIT_USAGE
    overrides = {
        name: getattr(args, name)
        for name in ("host", "port", "workers", "log_level")
        if getattr(args, name, None) is not None
    }
    settings = dataclasses.replace(settings, **overrides)
    if args.command == "serve":
        return serve(settings)
    return recognize_files(settings, args)


def serve(settings: Settings) -> int:
    """Run uvicorn in this process until SIGTERM/SIGINT; in-flight requests get the grace period."""
    import uvicorn

    from ocr_service.app import build_app
    from ocr_service.http.protocol import guarded_protocol

    configure_logging(settings.log_level, settings.log_format)
    config = uvicorn.Config(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        server_header=False,
        http=guarded_protocol(settings),  # bounded heads, problem+json protocol errors (http/protocol.py)
    )
    uvicorn.Server(config).run()
    return EXIT_OK


def recognize_files(settings: Settings, args: argparse.Namespace) -> int:
    configure_logging(getattr(args, "log_level", None) or "warning", "text")
    output: Path | None = args.output
    if output is not None and len(args.files) > 1 and not output.is_dir():
        print(f"catalyst-ocr: --output must be a directory when recognising {len(args.files)} files", file=sys.stderr)
        return EXIT_USAGE
    raw: dict[str, RawValue] = {
        name: getattr(args, name)
        for name in ("lang", "psm", "oem", "dpi", "pages", "preprocess", "format", *PREPROCESS_STEPS)
        if getattr(args, name) is not None
    }
    return asyncio.run(_recognize_all(settings, raw, args.files, output))


async def _recognize_all(settings: Settings, raw: dict[str, RawValue], files: list[Path], output: Path | None) -> int:
    from ocr_service.pipeline import OcrPipeline

    pipeline = OcrPipeline(settings)
    try:
        options = parse_options(raw, settings, pipeline.resolve_lang)
    except OcrError as exc:
        print(f"catalyst-ocr: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    await pipeline.start()
    try:
        for path in files:
            try:
                data = _read(path, settings.max_upload_bytes)
                outcome = await pipeline.run(data, options, timeout=settings.timeout_seconds)
            except OcrError as exc:
                print(f"catalyst-ocr: {path}: {exc.title}: {exc.detail}", file=sys.stderr)
                failed += 1
                continue
            try:
                _write(outcome.body, path, options.format, output)
            except OSError as exc:
                print(f"catalyst-ocr: {path}: cannot write the result: {exc.strerror or exc}", file=sys.stderr)
                failed += 1
    finally:
        await pipeline.aclose()
    return EXIT_FAILED if failed else EXIT_OK


def _read(path: Path, max_bytes: int) -> bytes:
    """The file's bytes (`-` is standard input), refusing anything over the upload limit."""
    if str(path) == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UnreadableFile(f"standard input exceeds the limit of {max_bytes} bytes (OCR_MAX_UPLOAD_BYTES)")
        return data
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnreadableFile(f"the file is {size} bytes; the limit is {max_bytes} (OCR_MAX_UPLOAD_BYTES)")
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from None


class UnreadableFile(OcrError):
    """A CLI input that cannot be read; reported like every other per-file error."""

    slug, title = "unreadable-file", "Cannot read the file"


def _write(body: bytes, source: Path, output_format: OutputFormat, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(body)
        if not body.endswith(b"\n") and output_format is not OutputFormat.PDF:
            sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
        return
    stem = "stdin" if str(source) == "-" else source.stem
    target = output / (stem + FILE_EXTENSIONS[output_format]) if output.is_dir() else output
    target.write_bytes(body)
