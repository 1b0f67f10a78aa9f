"""How many cores this process may really use.

``os.cpu_count()`` reports the host's cores, and the affinity mask the cores the process may be
scheduled on; neither knows about a CPU *quota*. A container limited to ``cpu: 2`` on a 16-core
node (an AKS pod), or a Flex Consumption instance, would otherwise start 16 onnxruntime threads
that the quota then throttles. The quota is read from cgroup v2 (``cpu.max``) or v1
(``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _affinity() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cgroup_quota(root: Path = CGROUP) -> float | None:
    """The CPU quota in cores, or None when there is none (or no cgroup file to read)."""
    try:
        quota, _, period = (root / "cpu.max").read_text(encoding="ascii").partition(" ")
        if quota.strip() != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cores(root: Path = CGROUP) -> int:
    """Cores this process may use: the affinity mask, capped by the cgroup CPU quota (rounded up)."""
    cores = _affinity()
    quota = cgroup_quota(root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return cores
