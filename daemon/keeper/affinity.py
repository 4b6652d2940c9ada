"""dora's `cpu_affinity`: the CPUs a node's process runs on, set as the keeper starts it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence


def unavailable(cpus: Sequence[int]) -> str | None:
    """Why the node cannot be pinned to `cpus` here (CPUs this machine does not give the
    keeper), or None."""
    here = os.sched_getaffinity(0)
    missing = sorted(set(cpus) - here)
    if not missing:
        return None
    shown = ", ".join(map(str, missing))
    return f"cpu_affinity: CPU {shown} not available here (available: {_ranges(sorted(here))})"


def pin(pid: int, cpus: Sequence[int]) -> None:
    """Pin the just-started process `pid` (it has not started threads yet: they inherit).
    `unavailable` was asked first, so the one failure left is a process that died at once,
    which its exit reports."""
    with contextlib.suppress(ProcessLookupError):
        os.sched_setaffinity(pid, cpus)


def _ranges(cpus: list[int]) -> str:
    """`[0, 1, 2, 5]` -> `0-2, 5`."""
    parts: list[str] = []
    for cpu in cpus:
        if parts and cpu == int(parts[-1].rsplit("-", 1)[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ", ".join(parts)
