"""Removal of a run's shared-memory segments from /dev/shm, by the run's name prefix.

Nodes unlink their own segments when they close, but a node killed by a signal, or a
daemon that died, leaves them behind: the daemon calls this when a run ends, and at
recovery for every run it finds ended, by the SDK's own prefix (`node_sdk.shm.run_prefix`).
"""

from __future__ import annotations

import contextlib
import os

from node_sdk.shm import SHM_DIR, run_prefix


def remove_run_segments(run_id: str, shm_dir: str = SHM_DIR) -> int:
    """Unlink every segment of the run; how many were removed (0 when none, or no /dev/shm)."""
    prefix = run_prefix(run_id)
    if len(prefix) < len("flow-") + 12:
        return 0  # never a prefix so short that it could match another run's segments
    removed = 0
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return 0
    for name in names:
        if name.startswith(prefix):
            with contextlib.suppress(FileNotFoundError):  # its node unlinked it meanwhile
                os.unlink(os.path.join(shm_dir, name))
                removed += 1
    return removed
