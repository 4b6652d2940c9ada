"""What a run's nodes leave behind (setsid, double fork): the keeper as their subreaper.

A node's child that calls `setsid()` leaves the node's process group, so signalling the
group misses it. With `PR_SET_CHILD_SUBREAPER` the keeper's process becomes the parent of
every orphaned descendant instead of init: the run's processes are then exactly the
keeper's descendants, found with psutil, reaped when they exit and killed when the keeper
ends, whatever ended it.

A keeper of its own (`python -m daemon.keeper`) owns all its descendants. A keeper thread
(`flow run`) shares its process with other code, so it takes only what it saw under a
node, or what carries its run's `FLOW_DATAFLOW`; a descendant that both left its node
between two scans and cleared its environment is missed there (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable

import attrs
import psutil

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
TERM_S = 1.0  # descendants get this long after SIGTERM, then SIGKILL
# gone, not ours, or /proc unreadable for now (EMFILE): never an error of the keeper
_GONE = (psutil.Error, OSError)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("keeper: cannot become a subreaper: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


@attrs.define(eq=False)
class Descendants:
    """The run's processes below the keeper, tracked across `setsid()` and double forks."""

    whole_process: bool  # the keeper is its own process: every descendant is the run's
    run_ids: set[str] = attrs.field(factory=set)  # FLOW_DATAFLOW values of its nodes
    known: dict[int, float] = attrs.field(factory=dict)  # pid -> create time, seen as ours
    blind: bool = False  # the last scan could not read /proc

    def scan(self, leaders: Iterable[int]) -> list[psutil.Process]:
        """The run's live processes below this one now (remembered for later scans)."""
        try:
            below = psutil.Process().children(recursive=True)
        except _GONE:
            self.blind = True  # `known` is kept: kill_all falls back on it
            return []
        self.blind = False
        ours = below if self.whole_process else self._filter(below, set(leaders))
        self.known = {p.pid: _started(p) for p in ours}
        return ours

    def _filter(self, below: list[psutil.Process], leaders: set[int]) -> list[psutil.Process]:
        parent = {}
        for process in below:
            with contextlib.suppress(*_GONE):
                parent[process.pid] = process.ppid()
        ours = []
        for process in below:
            pid, hops = process.pid, 0
            while pid in parent and pid not in leaders and hops < 64:
                pid, hops = parent[pid], hops + 1
            if pid in leaders or self._known(process) or self._tagged(process):
                ours.append(process)
        return ours

    def _known(self, process: psutil.Process) -> bool:
        started = self.known.get(process.pid)
        return started is not None and started == _started(process)

    def _tagged(self, process: psutil.Process) -> bool:
        try:
            return process.environ().get("FLOW_DATAFLOW") in self.run_ids
        except _GONE:
            return False

    def reap(self, skip: set[int]) -> None:
        """Collect the exit of orphans re-parented to us (never a node's: `skip`)."""
        mine = os.getpid()
        for pid in list(self.known):
            if pid in skip:
                continue
            with contextlib.suppress(*_GONE, ChildProcessError, OSError):
                process = psutil.Process(pid)
                if process.ppid() == mine and process.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(pid, os.WNOHANG)
                    self.known.pop(pid, None)

    def kill_all(self, leaders: Iterable[int], skip: set[int]) -> int:
        """SIGTERM every process of the run, SIGKILL what is left after TERM_S; how many."""
        leaders = set(leaders)
        known = dict(self.known)
        found = [p for p in self.scan(leaders) if p.pid not in skip]
        if self.blind:
            # /proc could not be read (out of fds): what the last scan saw gets SIGKILL
            for pid in set(known) - skip:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            return len(known)
        if not found:
            return 0
        for process in found:
            with contextlib.suppress(*_GONE):
                process.terminate()
        _, alive = psutil.wait_procs(found, timeout=TERM_S)
        for process in alive:
            with contextlib.suppress(*_GONE):
                process.kill()
        psutil.wait_procs(alive, timeout=TERM_S)
        self.reap(skip)
        log.info("keeper: %d processes left by the run's nodes ended", len(found))
        return len(found)


def _started(process: psutil.Process) -> float:
    try:
        return float(process.create_time())
    except _GONE:
        return 0.0


_PR_SET_PDEATHSIG = 1


def die_with_this_thread() -> Callable[[], None]:
    """A `preexec_fn` that makes the child SIGKILLed when the spawning thread dies.

    For `flow run`, whose keeper is a thread: a `flow run` killed with SIGKILL leaves no
    keeper to stop its nodes. (Linux ties the signal to the thread that forked; the keeper
    thread lives until its nodes are reported.)
    """
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # it died before the line above: nobody will signal
            os._exit(1)

    return preexec
