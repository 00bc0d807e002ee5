"""`python -m ocr_service.jobs`: a worker-only replica that recognises job pages and serves no API.

For deployments that scale recognition apart from the API (the same settings as
`catalyst-ocr serve`; it needs a shared `OCR_DATABASE_URL` to be useful), and for the
crash-safety tests, which SIGKILL these processes mid-page.

It listens on `OCR_HOST:OCR_PORT` (`--host`, `--port` override them; `--port 0` picks a free
port) for `/livez`, `/readyz`, `/health` and `/metrics` only: without them a Kubernetes worker
pod could be neither probed (a wedged worker never restarted, one that cannot reach the job
store looking healthy) nor scraped. Beside `catalyst-ocr serve` on one machine, give it another
port. The engines and the job workers start before the port opens.

SIGTERM stops claiming at once, lets pages in progress finish for `OCR_SHUTDOWN_GRACE_SECONDS`
(releasing the rest), and only then closes the port and exits 0. uvicorn's own order (drain
HTTP connections, then the lifespan) would let the workers claim new pages for a while after the
signal, so this process drives the steps itself and uvicorn only serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from ocr_service.app import build_worker_app
from ocr_service.cache import build_cache
from ocr_service.cli import uvicorn_config
from ocr_service.jobs.runtime import JobRuntime
from ocr_service.logs import configure_logging
from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings, SettingsError

log = logging.getLogger(__name__)


class ProbeServer(uvicorn.Server):
    """uvicorn serving the probes and metrics; the signals are the replica's (see the module docstring)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()
        """Set once the socket listens: uvicorn's `bind_socket` binds it, `startup` makes it listen."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


async def run(settings: Settings) -> None:
    pipeline = OcrPipeline(settings)
    cache = build_cache(settings)
    runtime = JobRuntime(settings, pipeline, cache)
    config = uvicorn_config(settings, build_worker_app(settings, pipeline, runtime), lifespan="off")
    server = ProbeServer(config)
    # Bound now, served once the workers run: a port already taken ends the process (exit 3) before
    # any page is claimed.
    sockets = [config.bind_socket()]
    await pipeline.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving: asyncio.Task[None] | None = None
    try:
        await runtime.start()
        serving = asyncio.create_task(server.serve(sockets))
        # Announce the port once it listens: a probe (or a test) that reads the line and connects at
        # once would otherwise be refused.
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({serving, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if server.listening.is_set():
            host, port = sockets[0].getsockname()[:2]
            log.info("worker replica: probes and metrics on http://%s:%d", host, port)
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
    finally:
        await runtime.stop(settings.shutdown_grace_seconds)
        if serving is not None:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        await cache.close()
        await pipeline.aclose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ocr_service.jobs",
        description="A worker-only replica: recognises job pages; serves only probes and metrics.",
    )
    parser.add_argument("--host", help="address of the probes and metrics (OCR_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port of the probes and metrics (OCR_PORT, default 8000; 0: any free)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"catalyst-ocr jobs: invalid setting: {exc}", file=sys.stderr)
        return 2
    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
    settings = dataclasses.replace(settings, **overrides)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
