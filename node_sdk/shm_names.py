"""Shared-memory segment names: a run's prefix, a sender's tag, and the removal of a
crashed sender's older generations (node_sdk/shm.py has the pool that makes them).

A segment is `/dev/shm/flow-<run12>-<node8>g<generation>-<n>`, so the daemon can remove a
run's segments by prefix however the run ends."""

from __future__ import annotations

import contextlib
import os
from typing import Final

from node_sdk import paths

SHM_DIR: Final = "/dev/shm"
NAME_PREFIX: Final = "flow-"


def run_prefix(run_id: str) -> str:
    """The name prefix of every segment of a run (the daemon removes them by it)."""
    return f"{NAME_PREFIX}{paths.run_short_id(run_id)}-"


def sender_tag(node_id: str, generation: int) -> str:
    """A short, path-safe tag of one generation of one node."""
    import hashlib  # a sender's first large payload only

    return f"{hashlib.sha1(node_id.encode()).hexdigest()[:8]}g{generation}"



def remove_older_generations(run_id: str, tag: str, generation: int) -> int:
    """Unlink this node's segments of every generation before its last one; how many.

    A generation that crashed never unlinks its segments, and the daemon removes a run's
    only when the run ends: a node that crashes again and again would fill /dev/shm. The
    previous generation's are left alone, as a receiver may not have mapped them yet (one
    that is still that far behind after two restarts gets those messages refused, counted).
    """
    stem = f"{run_prefix(run_id)}{tag[: tag.rindex('g') + 1]}"  # up to the generation
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return 0
    removed = 0
    for name in names:
        number, dash, _ = name[len(stem) :].partition("-")
        if name.startswith(stem) and dash and number.isdigit() and int(number) < generation - 1:
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
                os.unlink(os.path.join(SHM_DIR, name))
                removed += 1
    return removed
