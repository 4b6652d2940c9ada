"""The one-daemon-per-FLOW_HOME lock (SPEC 10): an exclusive, non-blocking flock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from node_sdk import paths


class HomeLocked(Exception):
    """Another process (a daemon, or `flow prune` with none) holds the home's lock."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by pid {holder}")
        self.path = path
        self.holder = holder


def lock_home(home: Path) -> int:
    """Open and take the home's lock; its descriptor, which the caller closes to release it.

    OSError when the file cannot be opened (never through a symlink), HomeLocked when another
    process holds it (the pid it wrote, or "unknown"). Python opens it non-inheritable, so
    no keeper or node keeps the lock alive.
    """
    path = paths.daemon_lock_file(home)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise HomeLocked(path, holder) from None
    return fd
