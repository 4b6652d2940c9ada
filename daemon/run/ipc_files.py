"""`ipc://` socket files: probed before a bind, removed only when they are still our own.

libzmq unlinks whatever is at an `ipc://` path when it binds, so binding blindly takes a
live socket away from whoever serves it (another daemon, another program). A socket file
is unlinked only when nobody answers on it (ECONNREFUSED: its owner is dead); a live one
is refused with one line naming the process behind it (SPEC 10, fault matrix row 19).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from pathlib import Path

import psutil

from daemon.model.errors import ControlSocketUnavailable

PROBE_TIMEOUT_S = 1.0

Identity = tuple[int, int]  # (st_dev, st_ino) of a socket file we bound


def _peer(sock: socket.socket) -> str:
    """`pid N (name)` of the process listening at the other end, as far as it can be known."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
    except OSError:
        return "a live process"
    try:
        return f"pid {pid} ({psutil.Process(pid).name()})"
    except psutil.Error:
        return f"pid {pid}"


def claim(path: Path) -> None:
    """Make way to bind at `path`: a stale socket is unlinked, a live one refused."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        return  # not a socket: the bind itself fails and says so
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT_S)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:  # nobody listens: a dead owner's leftover
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:  # a timeout (a full backlog) is someone alive too
            raise ControlSocketUnavailable(
                f"socket {path} is in use ({exc.strerror or exc}): not taken over"
            ) from None
        raise ControlSocketUnavailable(
            f"socket {path} is served by {_peer(probe)}: not taken over; stop it first"
        )


def is_stale(path: Path) -> bool:
    """True for a socket file nobody listens on (its owner is dead): safe to unlink."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
    except OSError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT_S)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def identity(path: Path) -> Identity | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def remove_own(path: Path, own: Identity | None) -> None:
    """Unlink `path` only if it is still the socket file we bound (not a later owner's)."""
    if own is not None and identity(path) == own:
        with contextlib.suppress(OSError):
            os.unlink(path)
