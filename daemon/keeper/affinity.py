"""dora's `cpu_affinity`: the CPUs a node's process runs on, from its start (a forked node
pins itself: node_sdk/forkchild.py; an exec'd one inherits them from the keeper)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence


def unavailable(cpus: Sequence[int]) -> str | None:
    """Why the node cannot be pinned to `cpus` here (CPUs this machine does not give the
    keeper), or None."""
    here = os.sched_getaffinity(0)
    missing = sorted(set(cpus) - here)
    if not missing:
        return None
    shown = ", ".join(map(str, missing))
    return f"cpu_affinity: CPU {shown} not available here (available: {_ranges(sorted(here))})"


@contextlib.contextmanager
def inherited(cpus: Sequence[int] | None) -> Iterator[None]:
    """Pin the calling thread to `cpus` while the block starts a process (None: leave it
    as it is): a child inherits the mask of the thread that forked it, so an exec'd node
    runs on its CPUs from its first instruction. Pinning the child by its pid after the
    start left it running elsewhere meanwhile, with the threads it started by then. The
    thread's own mask is put back after (it is per thread: the keeper's others keep theirs);
    `unavailable` was asked first."""
    if cpus is None:
        yield
        return
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mask)


def _ranges(cpus: list[int]) -> str:
    """`[0, 1, 2, 5]` -> `0-2, 5`."""
    parts: list[str] = []
    for cpu in cpus:
        if parts and cpu == int(parts[-1].rsplit("-", 1)[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ", ".join(parts)
