"""The daemon's own resources: descriptors left before taking more work, memory given back.

libzmq aborts the process when `accept` meets EMFILE on an ipc socket, so a start (a
keeper, its link, a connection per node) is refused while too few descriptors are left.
A flood of connections leaves glibc holding the freed memory of libzmq's I/O thread;
`malloc_trim` hands it back once the daemon is quiet again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import resource

import trio

log = logging.getLogger(__name__)

TRIM_S = 2.0  # how often the heap is trimmed
# a start needs a keeper, its link and a connection per node: keep this many in hand
FD_RESERVE = 64
FDS_PER_NODE = 1  # its connection to the node channel


def fds_in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc, or out of descriptors right now
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fds_left() -> int:
    """Descriptors this process may still open."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] - fds_in_use()


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once: `find_library` runs helper programs on Linux."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _malloc_trim() -> None:
    libc = _libc()
    with contextlib.suppress(AttributeError):  # not glibc: nothing to trim
        if libc is not None:
            libc.malloc_trim(0)


async def trim_memory() -> None:
    """Give freed heap back to the system every TRIM_S (glibc keeps it otherwise)."""
    while True:
        await trio.sleep(TRIM_S)
        _malloc_trim()
