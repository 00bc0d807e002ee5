"""Recognition: Tesseract engines, the worker pool, the result model and the renderers.

Importing this package sets `OMP_THREAD_LIMIT=1` in the process environment (unless already
set) BEFORE anything loads libtesseract: Tesseract's OpenMP threads fight the pool's own
parallelism (one recognition per CPU) and make throughput several times worse on busy machines.
libgomp reads the variable once, when the library loads, so it must be set first; the CLI
engine passes it to each `tesseract` process explicitly too.

Layout: `model` (result dataclasses), `base` (engine protocols), `tesserocr_engine` (warm,
in-process) and `cli_engine` (portable fallback), `backends` (choosing one), `pool` (threads,
bounded queue, deadlines), `cpus` (cgroup-aware CPU count), `languages`, `renderers`.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
