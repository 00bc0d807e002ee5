"""How many CPUs this process may really use: the container's limit, not the node's core count.

In Kubernetes a pod with `limits.cpu: 2` on a 64-core node sees 64 cores in `os.cpu_count()`,
and 64 Tesseract workers would be throttled by the CFS quota into terrible latency. The answer is
the smallest of: the CPUs in our affinity mask (`os.sched_getaffinity`, which cpusets and
`taskset` shrink), and the CFS quota of our cgroup or any ancestor (cgroup v2 `cpu.max`, v1
`cpu.cfs_quota_us / cpu.cfs_period_us`), rounded DOWN (a 1.5-CPU quota gets 1 worker: a second
one would only be throttled), never below 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def available_cpus(cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """CPUs usable by this process (see module docstring); the paths are parameters for tests."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_self_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The tightest CFS quota in CPUs over our cgroup and its ancestors (v2, else v1), or None when unlimited."""
    memberships = _memberships(proc_self_cgroup)
    v2_path = memberships.get("")
    if v2_path is not None and (cgroup_root / "cgroup.controllers").exists():
        return _tightest(cgroup_root, v2_path, _read_v2)
    for controllers, path in memberships.items():
        if "cpu" in controllers.split(","):
            for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
                if (cgroup_root / mount).is_dir():
                    return _tightest(cgroup_root / mount, path, _read_v1)
    return None


def _memberships(proc_self_cgroup: Path) -> dict[str, str]:
    """`/proc/self/cgroup` as {controllers: path}; the v2 unified entry has empty controllers."""
    try:
        text = proc_self_cgroup.read_text()
    except OSError:
        return {}
    memberships: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            memberships[parts[1]] = parts[2]
    return memberships


def _tightest(mount: Path, cgroup_path: str, reader: Callable[[Path], float | None]) -> float | None:
    """Walk from our cgroup up to the mount root (inside a container the path may not exist: use the root)."""
    directory = mount / cgroup_path.lstrip("/")
    candidates: list[Path] = []
    while True:
        if directory.is_dir():
            candidates.append(directory)
        if directory == mount or mount not in directory.parents:
            break
        directory = directory.parent
    if mount not in candidates:
        candidates.append(mount)
    quotas = [q for q in (reader(d) for d in candidates) if q is not None]
    return min(quotas) if quotas else None


def _read_v2(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _read_v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period
