"""A bursty day of job pages, replayed against two autoscalers: CPU utilisation vs queue depth.

    .venv/bin/python benchmarks/autoscale_sim.py            # 50,000 pages over 24 h (a few minutes)
    .venv/bin/python benchmarks/autoscale_sim.py --quick    # smoke run: 2 h, 2,000 pages, seconds

Step 1 measures real page times: the service's own pipeline (the engine `auto` picks, one
worker, preprocessing as `OCR_DEFAULT_PREPROCESS`) recognises pages of the shared OCR corpus
(`../shared/ocr-corpus/`) the way a job worker does (`run_page`, every output format), after a
warm-up. Step 2 replays a day in a discrete-time queue model (1 s steps) whose service times are
drawn (seeded) from those measurements, for two policies on the same arrivals:

- `cpu-hpa`: what `spec.autoscaling` gives today, applied to the job workers: an HPA on CPU
  utilisation (target 70 %, 60 s metrics window, 15 s sync, 10 % tolerance, default scale-up
  limits, 300 s scale-down stabilisation), at least 1 pod;
- `queue-depth`: `spec.jobWorkers.autoscaling` with KEDA: the backlog (pages queued + in progress)
  read every 15 s, `ceil(backlog / pagesPerReplica)` pods, 0 -> 1 as soon as a page waits
  (activation 0), the same HPA limits and stabilisation between 1 and max, to zero after the 300 s
  cooldown.

Both: at most `--max-pods` pods of `--slots` pages at once each (one per CPU), 30 s from a pod's
creation to its first claim (scheduling, image, engine warm-up), and graceful scale-in: a pod
told to stop claims nothing more and finishes its pages before it goes (pages are far shorter
than the job time limit, so none needs releasing). Reported: pod-minutes (what the cluster pays
for, starting and draining pods included), p50/p95 from submission to result, the most pods, and
pages lost (submitted but never finished once the day has drained: must be 0).

The arrivals: a trickle through office hours (plus a little at night), and bursts of a few
thousand pages within minutes (scanner batches, nightly imports) at seeded random times.
Timing figures from a shared machine are noisy: quote numbers measured on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocr_service.jobs.models import ALL_FORMATS
from ocr_service.options import OcrOptions
from ocr_service.pipeline import OcrPipeline
from ocr_service.settings import Settings

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "ocr-corpus"
STEP = 1.0
POD_START_SECONDS = 30.0
HPA_SYNC_SECONDS = 15.0
CPU_WINDOW_SECONDS = 60.0
CPU_TARGET = 0.70
TOLERANCE = 0.10
STABILIZATION_SECONDS = 300.0
KEDA_POLL_SECONDS = 15.0


# --- step 1: real page times ------------------------------------------------------------------------


def corpus_pages(limit: int) -> list[Path]:
    pages = sorted(p for p in CORPUS.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".png", ".jpg"))
    if not pages:
        raise SystemExit(f"no corpus images under {CORPUS}")
    return pages[:limit]


async def measure_page_seconds(paths: list[Path], repeats: int) -> list[float]:
    """Seconds per page as a job worker spends them (`run_page`, every format), one engine worker."""
    settings = Settings.from_env({**os.environ, "OCR_WORKERS": "1"})
    pipeline = OcrPipeline(settings)
    await pipeline.start()
    try:
        options = pipeline.validate(OcrOptions())
        documents = [p.read_bytes() for p in paths]
        await pipeline.run_page(documents[0], 1, options, set(ALL_FORMATS), timeout=settings.timeout_seconds)
        times = []
        for _ in range(repeats):
            for data in documents:
                started = time.perf_counter()
                await pipeline.run_page(data, 1, options, set(ALL_FORMATS), timeout=settings.timeout_seconds)
                times.append(time.perf_counter() - started)
        return times
    finally:
        await pipeline.aclose()


# --- step 2: the day ------------------------------------------------------------------------------


def arrivals(seed: int, hours: float, total: int, bursts: int) -> list[float]:
    """Submission times (s) of `total` pages: 60 % in `bursts` bursts, 35 % office hours, 5 % any time."""
    rng = random.Random(seed)
    length = hours * 3600.0
    times: list[float] = []
    in_bursts = int(total * 0.60)
    office = int(total * 0.35)
    per_burst = in_bursts // max(1, bursts)
    office_start, office_end = (length * 7 / 24, length * 19 / 24) if hours >= 12 else (0.0, length)
    for _ in range(bursts):
        start = rng.uniform(office_start, max(office_start, office_end - 600))
        spread = rng.uniform(60, 300)  # a batch lands within one to five minutes
        times += [start + rng.uniform(0, spread) for _ in range(per_burst)]
    times += [rng.uniform(office_start, office_end) for _ in range(office)]
    times += [rng.uniform(0, length) for _ in range(total - len(times))]
    return sorted(times)


@dataclass
class Pod:
    created: float
    slots: list[float]
    """When each slot is free again (pages at once = len)."""
    draining: bool = False
    gone: float | None = None

    def ready(self, now: float) -> bool:
        return now >= self.created + POD_START_SECONDS and not self.draining and self.gone is None


@dataclass
class Result:
    policy: str
    pod_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    max_pods: int = 0
    submitted: int = 0

    @property
    def lost(self) -> int:
        return self.submitted - len(self.latencies)


def _hpa_limit(current: int, desired: int, max_pods: int) -> int:
    """The HPA's default scale-up limit per period: +100 % or +4 pods, whichever is more."""
    if desired > current:
        desired = min(desired, max(current * 2, current + 4))
    return max(0, min(desired, max_pods))


def simulate(
    policy: str,
    times: list[float],
    service: list[float],
    *,
    hours: float,
    max_pods: int,
    slots: int,
    pages_per_replica: int,
    seed: int,
) -> Result:
    rng = random.Random(seed)
    result = Result(policy, submitted=len(times))
    queue: deque[float] = deque()
    pods: list[Pod] = []
    busy_history: deque[tuple[float, float]] = deque()  # (time, busy slot fraction of ready pods)
    recommendations: deque[tuple[float, int]] = deque()
    min_pods = 1 if policy == "cpu-hpa" else 0
    pods.extend(Pod(0.0, [0.0] * slots) for _ in range(min_pods))
    next_arrival = 0
    last_active = -math.inf
    end = hours * 3600.0
    now = 0.0
    while now < end or queue or any(p.gone is None and max(p.slots) > now for p in pods):
        horizon = now + STEP
        while next_arrival < len(times) and times[next_arrival] < horizon:
            queue.append(times[next_arrival])
            next_arrival += 1
        # Workers claim pages (oldest first) as their slots free up within this step.
        for pod in pods:
            if not pod.ready(now):
                continue
            for index, free_at in enumerate(pod.slots):
                at = max(free_at, now)
                while queue and at < horizon:
                    arrived = queue[0]
                    if arrived > at:
                        if arrived >= horizon:
                            break
                        at = arrived
                    queue.popleft()
                    at += rng.choice(service)
                    result.latencies.append(at - arrived)
                pod.slots[index] = max(at, free_at)
        alive = [p for p in pods if p.gone is None]
        ready = [p for p in alive if p.ready(now)]
        busy = sum(1 for p in ready for free_at in p.slots if free_at > now)
        in_progress = sum(1 for p in alive for free_at in p.slots if free_at > now)
        busy_history.append((now, busy / (len(ready) * slots) if ready else 0.0))
        while busy_history and busy_history[0][0] < now - CPU_WINDOW_SECONDS:
            busy_history.popleft()
        # A draining pod goes once its pages are done (graceful scale-in loses nothing).
        for pod in alive:
            if pod.draining and max(pod.slots) <= horizon:
                pod.gone = max(max(pod.slots), now)
        alive = [p for p in pods if p.gone is None]
        current = len([p for p in alive if not p.draining])
        # The scaler.
        desired = current
        if policy == "cpu-hpa" and now % HPA_SYNC_SECONDS == 0 and current:
            utilisation = statistics.fmean(u for _, u in busy_history) if busy_history else 0.0
            ratio = utilisation / CPU_TARGET
            if abs(ratio - 1) > TOLERANCE:
                desired = math.ceil(current * ratio)
            desired = max(min_pods, _hpa_limit(current, desired, max_pods))
        elif policy == "queue-depth" and now % KEDA_POLL_SECONDS == 0:
            backlog = len(queue) + in_progress
            if backlog > 0:
                last_active = now
            if current == 0:
                desired = 1 if backlog > 0 else 0  # KEDA's activation: 0 -> 1 on the first page
            elif backlog == 0 and now - last_active >= STABILIZATION_SECONDS:
                desired = 0  # KEDA's cooldown to zero
            else:
                desired = max(1, _hpa_limit(current, math.ceil(backlog / pages_per_replica), max_pods))
        if desired != current:
            recommendations.append((now, desired))
        while recommendations and recommendations[0][0] < now - STABILIZATION_SECONDS:
            recommendations.popleft()
        if desired < current and policy == "cpu-hpa":
            # Scale-down stabilisation: the highest recommendation of the window wins.
            desired = max([desired, *(r for t, r in recommendations if t >= now - STABILIZATION_SECONDS)])
            desired = min(desired, current)
        elif desired < current and desired > 0:
            desired = max([desired, *(r for t, r in recommendations if t >= now - STABILIZATION_SECONDS)])
            desired = min(desired, current)
        if desired > current:
            pods.extend(Pod(now, [now] * slots) for _ in range(desired - current))
        elif desired < current:
            # Scale in the idlest pods first (what the ReplicaSet's pod-deletion cost would pick).
            for pod in sorted((p for p in alive if not p.draining), key=lambda p: max(p.slots))[: current - desired]:
                pod.draining = True
        alive = [p for p in pods if p.gone is None]
        result.pod_seconds += STEP * len(alive)
        result.max_pods = max(result.max_pods, len(alive))
        now = horizon
        if now > end + 48 * 3600:  # a policy that never drains would be a bug in the model
            break
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 h, 2,000 pages, 2 measured pages: a smoke run")
    parser.add_argument("--pages", type=int, help="pages in the day (default 50,000; 2,000 with --quick)")
    parser.add_argument("--hours", type=float, help="length of the day (default 24; 2 with --quick)")
    parser.add_argument("--bursts", type=int, help="bursts in the day (default 9; 2 with --quick)")
    parser.add_argument("--max-pods", type=int, default=20)
    parser.add_argument("--slots", type=int, default=2, help="pages one pod recognises at once (its CPUs)")
    parser.add_argument("--pages-per-replica", type=int, default=4)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    pages = args.pages or (2_000 if args.quick else 50_000)
    hours = args.hours or (2.0 if args.quick else 24.0)
    bursts = args.bursts or (2 if args.quick else 9)

    paths = corpus_pages(2 if args.quick else 8)
    service = asyncio.run(measure_page_seconds(paths, repeats=1 if args.quick else 3))
    print(f"measured page times ({len(service)} pages of {len(paths)} corpus images, run_page, every format):")
    print(f"  p50 {statistics.median(service):.2f}s  mean {statistics.fmean(service):.2f}s  max {max(service):.2f}s")
    times = arrivals(args.seed, hours, pages, bursts)
    print(
        f"day: {pages:,} pages over {hours:g} h in {bursts} bursts + office hours; "
        f"pods of {args.slots} slots, at most {args.max_pods}, {POD_START_SECONDS:.0f}s to start; "
        f"pagesPerReplica {args.pages_per_replica}"
    )
    print(f"{'policy':<14}{'pod-minutes':>12}{'p50 s':>9}{'p95 s':>9}{'max pods':>10}{'pages lost':>12}")
    for policy in ("cpu-hpa", "queue-depth"):
        result = simulate(
            policy,
            times,
            service,
            hours=hours,
            max_pods=args.max_pods,
            slots=args.slots,
            pages_per_replica=args.pages_per_replica,
            seed=args.seed,
        )
        print(
            f"{policy:<14}{result.pod_seconds / 60:>12,.0f}{percentile(result.latencies, 0.5):>9.1f}"
            f"{percentile(result.latencies, 0.95):>9.1f}{result.max_pods:>10}{result.lost:>12}"
        )
        if result.lost:
            print(f"pages lost under {policy}: the model is broken", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
