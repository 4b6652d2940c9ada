"""The state store's reserve: room kept in FLOW_HOME for the writes a full disk refuses.

A run stopped while FLOW_HOME is full has its stop held in memory and written once there
is room (unsaved.py). Without room before the daemon ends, the run would stay `running`
in state.db and come back at the next start (SPEC 7.4). So the daemon keeps RESERVE_BYTES
allocated in `state.reserve`: when held writes are refused, it deletes that file and
tries them again at once, and makes it again once the disk has room to spare. The room a
log writer may take first is the only race left; the writes are tried again every second.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path
from typing import Final

from node_sdk import paths

log = logging.getLogger(__name__)

RESERVE_BYTES: Final = 256 * 1024  # 64 SQLite pages: a run's and its nodes' last writes
# the reserve is made again only with this much free besides: never the write that fills
# the disk for the logs
SPARE_FACTOR: Final = 4
_ZEROS: Final = bytes(64 * 1024)


def keep(home: Path) -> bool:
    """Make the reserve if it is missing and the disk has room to spare; True if it is
    there. Quiet: a disk without room is the reason it exists."""
    path = paths.state_reserve(home)
    if path.exists():
        return True
    try:
        free = os.statvfs(home)
        if free.f_bavail * free.f_frsize < SPARE_FACTOR * RESERVE_BYTES:
            return False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        log.debug("state store reserve: cannot make %s: %s", path, exc)
        return False
    try:
        _allocate(fd)
    except OSError as exc:
        log.debug("state store reserve: cannot fill %s: %s", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    finally:
        os.close(fd)
    return True


def _allocate(fd: int) -> None:
    """RESERVE_BYTES of real blocks (a sparse file would free nothing when deleted)."""
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    for _ in range(RESERVE_BYTES // len(_ZEROS)):  # a filesystem without fallocate
        os.write(fd, _ZEROS)


def release(home: Path) -> bool:
    """Delete the reserve; True if there was one to free."""
    try:
        paths.state_reserve(home).unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("state store reserve: cannot free it: %s", exc)
        return False
    return True
