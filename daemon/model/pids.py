"""What the system says of a pid, through psutil: alive, which process it is, and its usage.

A pid alone names a process only while it lives: the kernel hands it to the next process
after. A pid with its create time names one process for good, so a record that must
outlive its process (a `flow run`'s origin) keeps both (`tag`, `is_tagged_alive`).
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from node_sdk import paths

__all__ = [
    "alive",
    "cpu_seconds",
    "create_time",
    "daemon_exited",
    "daemon_pid",
    "foreground_process",
    "is_flow_daemon",
    "is_tagged_alive",
    "rss_bytes",
    "tag",
]

# psutil derives a create time from the boot time and the start in clock ticks, and the
# kernel's boot time moves when the wall clock is stepped (NTP at boot, a resumed VM): the
# same process can read back a start a little off. A pid taken again by another process
# within two seconds of the first one's start is far less likely than such a step.
SAME_START_S = 2.0
# A bare pid's record time is only compared against its start: one tick of rounding.
TICK_S = 0.01


# psutil is imported where it is asked (15-25 ms with what it pulls in): every `flow` command
# imports this module, and the check each makes before its request needs none (daemon_exited)
def _gone() -> tuple[type[BaseException], ...]:
    """What psutil raises for a process that is gone or not ours to read."""
    import psutil

    return (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except _gone():
        return False


def create_time(pid: int) -> float | None:
    """When the process started (epoch seconds); None when it is gone or a zombie."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except _gone():
        return None


def tag(pid: int | None = None) -> str:
    """`PID:CREATE_TIME` of this process (or of `pid`): a name no later process can take."""
    pid = os.getpid() if pid is None else pid
    started = create_time(pid)
    return f"{pid}:{started!r}" if started is not None else str(pid)


def is_tagged_alive(text: str, not_after: float | None = None) -> bool:
    """Whether the process `tag` named is still the one alive under its pid.

    A bare pid (written before tags carried a create time) is taken as that process only
    if the one alive under it started no later than `not_after` (the record's own time).
    That check is coarse: psutil's create times run up to a second early (the boot time
    they count from is whole seconds), so a pid reused within that second still passes.
    """
    pid_text, _, started_text = text.partition(":")
    if not pid_text.isdigit():
        return False
    started = create_time(int(pid_text))
    if started is None:
        return False
    if not started_text:
        return not_after is not None and started <= not_after + TICK_S
    try:
        recorded = float(started_text)
    except ValueError:
        return False
    return abs(started - recorded) <= SAME_START_S


# asking a `flow run` process to stop its run, as the daemon's `flow stop` and one with no
# daemon up both do (daemon/control/foreground_stop.py, cli/foreground_stop.py)
FOREGROUND_STOP_S = 60.0  # its own grace (10 s by default), SIGKILL, its result written
FOREGROUND_POLL_S = 0.2  # the end is a row another process writes: looked for, not awaited
SECOND_SIGNAL_S = 0.3  # after the first was taken: the second means "no grace"


def foreground_stop_signals(force: bool) -> tuple[signal.Signals, ...]:
    """What to send it, SECOND_SIGNAL_S apart: SIGTERM (its stop, as Ctrl-C), and for
    `--force` a second, other signal (a pending one of the same number would be taken as
    the first again: trio keeps one of each)."""
    return (signal.SIGTERM, signal.SIGINT) if force else (signal.SIGTERM,)


def foreground_process(info: Mapping[str, Any]) -> tuple[int, bool] | None:
    """For an active run a `flow run` supervises (its origin `foreground:PID:START`): that
    process's pid, and whether it still lives; None for any other run."""
    origin = str(info["origin"])
    if not origin.startswith("foreground") or info["status"] not in ("starting", "running"):
        return None
    tag = origin.partition(":")[2]
    pid = tag.partition(":")[0]
    if not pid.isdigit():
        return None
    return int(pid), is_tagged_alive(tag, not_after=float(info["created"]))


def is_flow_daemon(pid: int) -> bool:
    """Whether pid is alive and runs `python -m daemon` (guards against a reused pid)."""
    import psutil

    try:
        process = psutil.Process(pid)
        argv = process.cmdline()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
    except _gone():
        return False
    return any(a == "-m" and b == "daemon" for a, b in itertools.pairwise(argv))


def recorded_pid(home: Path) -> int | None:
    """The pid written in `home`'s daemon.pid, alive or not; None without a readable file."""
    try:
        return int(paths.daemon_pid_file(home).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def daemon_pid(home: Path) -> int | None:
    """The pid in `home`'s daemon.pid when that process is a live flow daemon."""
    pid = recorded_pid(home)
    return pid if pid is not None and is_flow_daemon(pid) else None


def daemon_exited(home: Path) -> bool:
    """True when daemon.pid names a pid no process has any more (signal 0 finds none).

    The cheap check a client makes before each request: a SIGKILLed daemon leaves its
    socket file behind, and once it is reaped this says so at once without psutil. A zombie
    not reaped yet (an orphan waits for init, a second or more on some machines) and a pid
    another process took since pass here; `daemon_is_gone` tells those while the client
    waits.
    """
    pid = recorded_pid(home)
    if pid is None:
        return False
    if pid <= 0:  # no process's: signal 0 to it would reach a whole process group
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process took it
        return False
    return False


def daemon_is_gone(home: Path) -> bool:
    """True when daemon.pid names a process that is no longer a live flow daemon.

    A daemon killed with SIGKILL leaves its pid file and socket behind; this tells a client
    at once. Without a pid file (a daemon still starting) nothing is known: False.
    """
    pid = recorded_pid(home)
    return pid is not None and not is_flow_daemon(pid)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, in seconds; None when it is gone."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except _gone():
        return None
    return float(times.user + times.system)


CpuSample = tuple[float | None, float]  # CPU seconds used (None: gone), at monotonic time


def cpu_percent(
    pid: int, now: float, previous: dict[int, CpuSample], samples: dict[int, CpuSample]
) -> float | None:
    """CPU use of `pid` since its sample in `previous`, in percent of one core; this
    call's sample goes into `samples` for the next one. None without an earlier sample."""
    used = cpu_seconds(pid)
    samples[pid] = (used, now)
    before = previous.get(pid)
    if used is None or before is None or before[0] is None or now <= before[1]:
        return None
    return round(100.0 * (used - before[0]) / (now - before[1]), 1)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process; None when it is gone."""
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except _gone():
        return None
