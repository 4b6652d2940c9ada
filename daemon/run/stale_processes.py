"""Processes of a run that nothing supervises any more, found by what they carry and killed.

A node's process group is killed by the pid recorded for it; what it started and moved out
of that group (`setsid()`, a double fork) is found by the run's `FLOW_DATAFLOW` in its
environment, and a keeper by its socket folder on its command line (psutil reads both).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

import psutil

Matches = Callable[[dict[str, str], str], bool]  # (environ, cmdline joined by NUL)


def kill_run_processes(run_id: str, keeper_mark: str, home: str) -> int:
    """SIGKILL the process groups of anything still running for run `run_id` of FLOW_HOME
    `home` (its keeper's command line holds `keeper_mark`, its socket folder); how many.
    The home too: a run placed on several machines has one id on each of them (a process
    without FLOW_HOME is a `flow run`'s of the default home, whose nodes carry none)."""
    return kill_groups(
        lambda environ, cmdline: (
            (environ.get("FLOW_DATAFLOW") == run_id and environ.get("FLOW_HOME", home) == home)
            or _is_keeper(cmdline, keeper_mark)
        )
    )


def _is_keeper(cmdline: str, keeper_mark: str) -> bool:
    """Whether a command line is the keeper's of the run whose socket folder is the mark."""
    return "daemon.keeper" in cmdline and keeper_mark in cmdline


def keeper_alive(keeper_mark: str) -> bool:
    """Whether a keeper process whose command line holds `keeper_mark` (its run's socket
    folder) lives (stopped counts; a zombie does not)."""
    for process in psutil.process_iter():
        try:
            if _is_keeper("\0".join(process.cmdline()), keeper_mark):
                return bool(process.status() != psutil.STATUS_ZOMBIE)
        except (psutil.Error, OSError):
            continue
    return False


def kill_groups(matches: Matches) -> int:
    """SIGKILL the process group led by each process `matches(environ, cmdline)` picks."""
    me = os.getpid()
    killed = 0
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            environ = process.environ()
            cmdline = "\0".join(process.cmdline())
        except (psutil.Error, OSError):
            continue  # gone meanwhile, or another user's: not ours either way
        if not matches(environ, cmdline):
            continue
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # no group of its own (a node's child in the node's):
            with contextlib.suppress(psutil.Error):  # itself, if it is still that process
                process.kill()
        except OSError:
            continue
        killed += 1
    return killed
