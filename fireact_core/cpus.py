"""How many CPUs this process can really use: its affinity, capped by its container's CPU quota.

`os.cpu_count()` counts the host's CPUs. A container limited by a CPU quota rather than a CPU set
(how Kubernetes limits a pod, and so a hosted Space) sees every CPU of a large host while it may
use two, and torch sized to the host then runs dozens of OpenMP threads on two CPUs' time: each
parallel op waits for threads the quota has descheduled (docs/performance.md measured 10-50x
slower decoding on 2 loaded cores). The quota is read from cgroup v2 (`cpu.max`) or v1
(`cpu.cfs_quota_us` / `cpu.cfs_period_us`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """CPUs for this process's threads: its affinity set, capped by a cgroup CPU quota (rounded down, at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root, proc_cgroup)
    return max(1, min(n, math.floor(quota))) if quota is not None else max(1, n)


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 2.0), or None when there is none or it is unreadable."""
    for folder in _cgroup_folders(root, proc_cgroup):
        v2 = folder / "cpu.max"
        if v2.is_file():
            return _ratio(*[*v2.read_text().split(), "", ""][:2])
        quota, period = folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"
        if quota.is_file() and period.is_file():
            return _ratio(quota.read_text().strip(), period.read_text().strip())
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    return q / p if q > 0 and p > 0 else None


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    """Where this process's CPU controller files may be: its own cgroup's folder (v2 unified, v1 `cpu`), then the
    mount's root (inside a container the namespace makes the container's cgroup the root)."""
    out: list[Path] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        rel = path.strip().lstrip("/")
        if controllers == "":
            out.append(root / rel)
        elif "cpu" in controllers.split(","):
            out += [root / "cpu" / rel, root / "cpu,cpuacct" / rel]
    return [*out, root, root / "cpu", root / "cpu,cpuacct"]
