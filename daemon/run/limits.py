"""The daemon's own resources: descriptors left before taking more work, memory given back.

libzmq 4.3 aborts the process when `accept` meets EMFILE on an ipc socket: the assert
after `accept4` in `ipc_listener_t::accept` (src/ipc_listener.cpp:297) admits ENFILE but
not EMFILE (the tcp listener admits both). No socket option bounds how many connections a
listener accepts, and the accept runs in libzmq's I/O thread, so nothing in the daemon can
refuse a connection before it takes a descriptor. So the daemon never starts with a limit
that its own user's commands could reach at once (MIN_NOFILE), and a start (a keeper, its
link, a connection per node) is refused while too few descriptors are left.
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
# the lowest open-file limit the daemon starts with: room for ~900 connections at once
# (each `flow` command is one) beside its runs; common hard limits are 4096 and up
MIN_NOFILE = 1024


def fd_limit_refusal(soft: int) -> str | None:
    """Why the daemon refuses to start under the open-file limit `soft`, if it does."""
    if soft >= MIN_NOFILE:
        return None
    return (
        f"the open-file limit is {soft}: flow needs at least {MIN_NOFILE}, as libzmq aborts "
        "the daemon when a connection meets the limit; raise the hard limit "
        f"(`ulimit -Hn {MIN_NOFILE}` as root, LimitNOFILE= in a systemd unit, or nofile "
        "in /etc/security/limits.conf)"
    )


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
