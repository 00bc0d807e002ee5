"""`catalyst-ocr`: `serve` runs the HTTP service, `ocr FILE...` recognises files without a server
(or, with `--url`, sends them to a running service through `catalyst_ocr.client`).

Argument parsing and wiring only. Settings come from `OCR_*` variables, and flags override
them. `ocr` goes through the same pipeline and the same option parser (`http.params`) as
`POST /v1/ocr`, so a bad option fails with the same message. Exit codes: 0 success,
1 a document failed (the error is printed), 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ocr_service import __version__
from ocr_service.contract import EnvVar
from ocr_service.errors import OcrError
from ocr_service.http.params import RawValue, parse_options
from ocr_service.logs import configure_logging
from ocr_service.options import PREPROCESS_STEPS, OutputFormat
from ocr_service.settings import Settings, SettingsError

if TYPE_CHECKING:
    import uvicorn

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
    serve.add_argument("--host", help="address to listen on (OCR_HOST, default 127.0.0.1; 0.0.0.0 = every interface)")
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
            f"--{step}",
            dest=step,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"force {step} on/off (also --{step} true|false)",
        )
    ocr.add_argument(
        "--output",
        "-o",
        help="file to write (one input), or directory for one file per input (created when it ends with / or"
        " several files are given); default standard output",
    )
    ocr.add_argument("--workers", type=int, help="parallel recognitions (OCR_WORKERS)")
    ocr.add_argument(
        "--url",
        default=os.environ.get("CATALYST_OCR_URL"),
        help="send the files to the service at URL instead of recognising here (default CATALYST_OCR_URL;"
        " the API key comes from CATALYST_OCR_API_KEY)",
    )
    return parser


def spell_switches(argv: Sequence[str]) -> list[str]:
    """`--sharpen true` / `--sharpen=false` (as the API spells switches) -> `--sharpen` / `--no-sharpen`.

    argparse's boolean flags take no value; rewriting the two words keeps `--sharpen FILE` a file.
    """
    switches = {f"--{step}" for step in PREPROCESS_STEPS}
    spelled: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        flag, equals, value = word.partition("=")
        if flag in switches and equals and value in ("true", "false"):
            spelled.append(flag if value == "true" else f"--no-{flag[2:]}")
        elif word in switches and index + 1 < len(argv) and argv[index + 1] in ("true", "false"):
            spelled.append(word if argv[index + 1] == "true" else f"--no-{word[2:]}")
            index += 1
        else:
            spelled.append(word)
        index += 1
    return spelled


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(spell_switches(sys.argv[1:] if argv is None else argv))
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

    configure_logging(settings.log_level, settings.log_format)
    warn_if_open(settings)
    config = uvicorn_config(settings, build_app(settings), lifespan="on")
    uvicorn.Server(config).run()
    return EXIT_OK


def uvicorn_config(settings: Settings, app: Any, *, lifespan: Literal["on", "off"]) -> uvicorn.Config:
    """uvicorn as this service runs it: our logging, no server header, the grace period, and the guarded
    HTTP/1.1 protocol (bounded heads, problem+json protocol errors: `http/protocol.py`)."""
    import uvicorn

    from ocr_service.http.protocol import guarded_protocol

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        server_header=False,
        http=guarded_protocol(settings),
    )


EVERY_INTERFACE = frozenset({"0.0.0.0", "::", "[::]"})


def warn_if_open(settings: Settings) -> None:
    """Listening on every interface with no API key lets anyone who reaches the port use the service.

    That is right behind a cluster's NetworkPolicy or compose's loopback port mapping, so it is
    a loud warning at start rather than a refusal.
    """
    if settings.host in EVERY_INTERFACE and not settings.all_api_keys():
        logging.getLogger(__name__).warning(
            "listening on every interface (%s=%s) without API keys: anyone who can reach port %d can use "
            "the service; set %s or %s, or %s=127.0.0.1",
            EnvVar.HOST,
            settings.host,
            settings.port,
            EnvVar.API_KEYS,
            EnvVar.API_KEYS_FILE,
            EnvVar.HOST,
        )


def recognize_files(settings: Settings, args: argparse.Namespace) -> int:
    configure_logging(getattr(args, "log_level", None) or "warning", "text")
    files: list[Path] = args.files
    raw: dict[str, RawValue] = {
        name: getattr(args, name)
        for name in ("lang", "psm", "oem", "dpi", "pages", "preprocess", "format", *PREPROCESS_STEPS)
        if getattr(args, name) is not None
    }
    try:
        targets = plan_outputs(files, args.output, OutputFormat(args.format))
    except UsageError as exc:
        print(f"catalyst-ocr: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.url:
        return _recognize_remote(args.url, raw, files, targets)
    return asyncio.run(_recognize_all(settings, raw, files, targets))


class UsageError(ValueError):
    """Arguments that cannot work together; exit code 2."""


def plan_outputs(files: list[Path], output: str | None, output_format: OutputFormat) -> list[Path | None]:
    """Where each input's result goes: None = standard output.

    `-o` names a directory when it ends with `/`, already is one, or several files are given;
    a missing directory is created. Inputs sharing a stem (`a/scan.png`, `b/scan.png`) get
    `scan.json`, `scan-2.json`, ... so no result overwrites another.
    """
    if output is None:
        if len(files) > 1 and output_format is OutputFormat.PDF:
            raise UsageError("several PDFs cannot share standard output; give -o DIRECTORY/")
        return [None] * len(files)
    target = Path(output)
    if not (output.endswith(("/", os.sep)) or target.is_dir() or len(files) > 1):
        return [target]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output directory {output}: {exc.strerror or exc}") from None
    extension = FILE_EXTENSIONS[output_format]
    taken: set[str] = set()
    planned: list[Path | None] = []
    for path in files:
        stem = "stdin" if str(path) == "-" else path.stem
        name, number = stem + extension, 1
        while name in taken:
            number += 1
            name = f"{stem}-{number}{extension}"
        taken.add(name)
        planned.append(target / name)
    return planned


async def _recognize_all(
    settings: Settings, raw: dict[str, RawValue], files: list[Path], targets: list[Path | None]
) -> int:
    from ocr_service.pipeline import OcrPipeline

    pipeline = OcrPipeline(settings)
    try:
        options = parse_options(raw, settings, pipeline.resolve_lang)
    except OcrError as exc:
        print(f"catalyst-ocr: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    several = len(files) > 1
    await pipeline.start()
    try:
        for path, target in zip(files, targets, strict=True):
            try:
                data = _read(path, settings.max_upload_bytes)
                outcome = await pipeline.run(data, options, timeout=settings.timeout_seconds)
            except OcrError as exc:
                print(f"catalyst-ocr: {path}: {exc.title}: {exc.detail}", file=sys.stderr)
                failed += 1
                continue
            failed += not _deliver(outcome.body, path, target, options.format, labelled=several)
    finally:
        await pipeline.aclose()
    return EXIT_FAILED if failed else EXIT_OK


REMOTE_MAX_BYTES = 1 << 30
"""What `--url` reads of one input at most; the service applies its own, smaller limit."""


def _recognize_remote(url: str, raw: dict[str, RawValue], files: list[Path], targets: list[Path | None]) -> int:
    """The same loop as `_recognize_all`, through the HTTP client: the service checks the options."""
    from catalyst_ocr.client import CatalystError, Client
    from catalyst_ocr.protocol import ocr_request

    options = dict(raw)
    output_format = OutputFormat(str(options.pop("format")))
    failed = 0
    with Client(url) as client:
        for path, target in zip(files, targets, strict=True):
            try:
                data = _read(path, REMOTE_MAX_BYTES)
                body = client.send(ocr_request(data, output_format.value, options)).content  # type: ignore[arg-type]
            except (OcrError, CatalystError) as exc:
                print(f"catalyst-ocr: {path}: {exc.title}: {exc.detail}", file=sys.stderr)
                failed += 1
                continue
            except httpx.HTTPError as exc:
                print(f"catalyst-ocr: {path}: cannot reach {url}: {exc}", file=sys.stderr)
                failed += 1
                continue
            failed += not _deliver(body, path, target, output_format, labelled=len(files) > 1)
    return EXIT_FAILED if failed else EXIT_OK


def _deliver(body: bytes, path: Path, target: Path | None, output_format: OutputFormat, *, labelled: bool) -> bool:
    """Print or write one result; False (and a message) when it cannot be written."""
    try:
        if target is None:
            _print(body, str(path), output_format, labelled=labelled)
        else:
            target.write_bytes(body)
    except OSError as exc:
        print(f"catalyst-ocr: {path}: cannot write the result: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


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


def _print(body: bytes, source: str, output_format: OutputFormat, *, labelled: bool) -> None:
    """One result on standard output; with several inputs each says which file it came from.

    JSON results are one line each with a `source` member (JSON lines); other formats are
    preceded by a `==> FILE <==` header line, as `head` and `tail` mark several files.
    """
    out = sys.stdout.buffer
    if labelled and output_format is OutputFormat.JSON:
        result = json.loads(body)
        result["source"] = source
        body = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
    elif labelled:
        out.write(f"==> {source} <==\n".encode())
    out.write(body)
    if not body.endswith(b"\n") and output_format is not OutputFormat.PDF:
        out.write(b"\n")
    out.flush()
