"""One node process of a run keeper, with its pipes, and signalling its process group."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
from typing import IO

import attrs

from daemon.keeper.logs import NodeLog
from daemon.keeper.stdout_output import StdoutOutput

STDERR_TAIL = 20


@attrs.define(eq=False)
class Child:
    """One node process and its pipes."""

    node: str
    generation: int
    process: subprocess.Popen[bytes]
    pidfd: int
    log: NodeLog
    stdout_output: StdoutOutput | None
    pipes: dict[int, str] = attrs.field(factory=dict)  # fd -> "stdout" / "stderr"
    files: dict[int, IO[bytes]] = attrs.field(factory=dict)  # fd -> its owning file object
    pending: dict[int, bytes] = attrs.field(factory=dict)
    tail: collections.deque[str] = attrs.field(
        factory=lambda: collections.deque(maxlen=STDERR_TAIL)
    )
    code: int | None = None
    kill_at: float | None = None  # group SIGKILL deadline once the leader has exited
    reported: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
