"""engine/cpus.py against fake cgroup trees: the container's CPU limit, not the node's cores."""

from __future__ import annotations

import os
from pathlib import Path

from ocr_service.engine.cpus import available_cpus, cgroup_cpu_quota


def affinity() -> int:
    return len(os.sched_getaffinity(0))


def v2_tree(tmp_path: Path, cgroup: str, limits: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    for relative, value in limits.items():
        directory = root / relative.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(value + "\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::{cgroup}\n")
    return root, proc


def test_v2_quota_of_our_cgroup(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, "/kubepods/pod1/ctr", {"/kubepods/pod1/ctr": "150000 100000"})
    assert cgroup_cpu_quota(root, proc) == 1.5
    assert available_cpus(root, proc) == 1  # rounded down: a second worker would only be throttled


def test_v2_tightest_ancestor_wins(tmp_path: Path) -> None:
    limits = {"/": "max 100000", "/kubepods/pod1": "100000 100000", "/kubepods/pod1/ctr": "max 100000"}
    root, proc = v2_tree(tmp_path, "/kubepods/pod1/ctr", limits)
    assert cgroup_cpu_quota(root, proc) == 1.0


def test_v2_unlimited_uses_affinity(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, "/", {"/": "max 100000"})
    assert cgroup_cpu_quota(root, proc) is None
    assert available_cpus(root, proc) == affinity()


def test_v2_inside_a_container_namespace_reads_the_root(tmp_path: Path) -> None:
    # In a container with its own cgroup namespace, /proc/self/cgroup says "/" and the limit is at the mount root.
    root, proc = v2_tree(tmp_path, "/", {"/": "50000 100000"})
    assert cgroup_cpu_quota(root, proc) == 0.5
    assert available_cpus(root, proc) == 1  # never below one worker


def test_v2_quota_larger_than_affinity_is_capped_by_affinity(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, "/", {"/": f"{(affinity() + 8) * 100000} 100000"})
    assert available_cpus(root, proc) == affinity()


def v1_tree(tmp_path: Path, quota: str, period: str = "100000", mount: str = "cpu,cpuacct") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    directory = root / mount / "docker" / "abc"
    directory.mkdir(parents=True)
    (directory / "cpu.cfs_quota_us").write_text(quota + "\n")
    (directory / "cpu.cfs_period_us").write_text(period + "\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    return root, proc


def test_v1_quota(tmp_path: Path) -> None:
    root, proc = v1_tree(tmp_path, "300000")
    assert cgroup_cpu_quota(root, proc) == 3.0
    assert available_cpus(root, proc) == min(3, affinity())


def test_v1_unlimited(tmp_path: Path) -> None:
    root, proc = v1_tree(tmp_path, "-1")
    assert cgroup_cpu_quota(root, proc) is None


def test_no_cgroup_files_at_all(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path / "missing", tmp_path / "missing-proc") is None
    assert available_cpus(tmp_path / "missing", tmp_path / "missing-proc") == affinity()


def test_garbage_cpu_max_is_ignored(tmp_path: Path) -> None:
    root, proc = v2_tree(tmp_path, "/", {"/": "lots please"})
    assert cgroup_cpu_quota(root, proc) is None
