"""What /proc says of a pid: alive (not a zombie), and whether it is a flow daemon."""

from __future__ import annotations

import itertools
from pathlib import Path

from node_sdk import paths


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def is_flow_daemon(pid: int) -> bool:
    """Whether pid is alive and runs `python -m daemon` (guards against a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    runs_daemon = any(a == b"-m" and b == b"daemon" for a, b in itertools.pairwise(argv))
    return runs_daemon and alive(pid)


def daemon_pid(home: Path) -> int | None:
    """The pid in `home`'s daemon.pid when that process is a live flow daemon."""
    try:
        pid = int(paths.daemon_pid_file(home).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if is_flow_daemon(pid) else None
