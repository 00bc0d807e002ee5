"""`python -m ocr_service.jobs`: a worker-only replica (no HTTP) that recognises job pages.

For deployments that scale recognition apart from the API (the same settings as
`catalyst-ocr serve`; it needs a shared `OCR_DATABASE_URL` to be useful), and for the
crash-safety tests, which SIGKILL these processes mid-page. SIGTERM stops claiming, lets
pages in progress finish for `OCR_SHUTDOWN_GRACE_SECONDS`, then exits.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from ocr_service.cache import build_cache
from ocr_service.jobs.runtime import JobRuntime
from ocr_service.logs import configure_logging
from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings, SettingsError


async def run(settings: Settings) -> None:
    pipeline = OcrPipeline(settings)
    cache = build_cache(settings)
    await pipeline.start()
    runtime = JobRuntime(settings, pipeline, cache)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await runtime.start()
        await stop.wait()
    finally:
        await runtime.stop(settings.shutdown_grace_seconds)
        await cache.close()
        await pipeline.aclose()


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"catalyst-ocr jobs: invalid setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
