"""`flow down`: shut the daemon down (every run stopped), or kill it with `--force`.

Everything goes through the daemon: its `shutdown` request, or, when no daemon is alive,
its `python -m daemon end-orphans` entry for the run keepers a dead daemon left.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from cli.durations import duration_arg
from daemon.model.pids import alive, daemon_pid, is_flow_daemon

DEFAULT_GRACE = 10.0  # the daemon's default node grace (SPEC 5)
ORPHANS_TIMEOUT_S = 30.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "down",
        help="stop every run and the flow daemon",
        description="Ask the daemon to stop every run and exit, and wait until it has. With "
        "no daemon alive, end the run keepers a dead daemon left.",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="no grace for nodes; SIGKILL the daemon if it does not answer",
    )
    p.add_argument(
        "--grace",
        type=duration_arg,
        default=None,
        metavar="D",
        help="how long nodes get after STOP before SIGTERM (e.g. 2s; default 10s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render, run_ref
    from cli.commands.config import load_settings
    from cli.commands.stop import request_budget
    from cli.errors import CliError, DaemonUnreachable
    from cli.waiting import Background, lost_machine_wait, wait_stopped
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_runs import List, Shutdown

    home = client.home_path()
    grace = 0.0 if args.force else args.grace
    info = client.ping(timeout=2.0, home=home)
    pid = info.pid if info is not None else daemon_pid(home)
    if info is None:
        if pid is None:
            orphans = end_orphaned_runs(home)
            if orphans:
                render.info(
                    f"flow daemon is not running; told {orphans} orphaned run keeper(s) to end"
                )
            else:
                render.info("flow daemon is not running")
            return 0
        if not args.force:
            raise CliError(f"the flow daemon (pid {pid}) does not answer: run flow down --force")
        _kill(pid)
        render.info(f"flow daemon killed (pid {pid})")
        # its runs' keepers would serve them for the grace, and the next daemon bring the
        # runs back: --force is a stop by request, at once
        orphans = end_orphaned_runs(home)
        if orphans:
            render.info(f"told {orphans} orphaned run keeper(s) to end")
        return 0
    seconds = None if grace is None else Seconds(grace)
    listed = client.call(List(), home=home).runs
    # a `flow run` is its own process's, not the daemon's: the daemon's stop leaves it be
    foreground = run_ref.foreground(listed)
    before = [r for r in listed if r not in foreground]
    if foreground:
        names = ", ".join(render.run_label(r) for r in foreground)
        render.warning(f"left running: {len(foreground)} foreground flow run(s) ({names}); "
                       "stop one with flow stop RUN or Ctrl-C in its terminal")  # fmt: skip
    budget = request_budget(grace)  # as `flow stop`'s: a stalled keeper's wait included
    budget += lost_machine_wait(before, load_settings)  # a lost machine: until its grace
    shutting: Background[object] = Background(
        lambda: client.call(Shutdown(grace=seconds), timeout=budget, home=home)
    )
    shown = DEFAULT_GRACE if grace is None else grace
    finals = wait_stopped(before, shown, budget, until=lambda: shutting.done)
    # it may exit before its reply gets out: the pid tells
    with contextlib.suppress(DaemonUnreachable):
        shutting.result()
    for final in finals:
        if final.get("status") not in ("starting", "running"):
            render.run_result(final)
    if pid is not None and not wait_gone(pid, budget):
        if not args.force:
            raise CliError(f"the flow daemon (pid {pid}) is still running: run flow down --force")
        _kill(pid)
    render.info(f"flow daemon stopped (pid {pid})")
    return 0


def end_orphaned_runs(home: Path) -> int:
    """With no daemon: have the daemon's own code end every run keeper still serving this
    home (they would after their grace anyway); how many were told."""
    import subprocess
    import sys

    from cli.errors import CliError

    done = subprocess.run(
        [sys.executable, "-m", "daemon", "end-orphans", "--home", str(home)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=ORPHANS_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        cause = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise CliError(f"could not end the orphaned run keepers: {cause}")
    return int(done.stdout)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _kill(pid: int) -> None:
    from cli.errors import CliError

    if not is_flow_daemon(pid):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    except PermissionError as exc:
        raise CliError(f"cannot kill the flow daemon (pid {pid}): {exc.strerror}") from None
    wait_gone(pid, 5.0)
