"""`flow stop` with no daemon: a run a `flow run` supervises is stopped by asking that
process, as the daemon would ask it (daemon/control/foreground_stop.py).

`flow down` leaves such runs running and says `flow stop RUN` stops them; with the daemon
down that said `cannot reach the flow daemon`. The `flow run` process stops its run on
SIGTERM as on Ctrl-C, with its own grace (a second, other signal: at once), and writes
the run's end in `state.db`, where this reads it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cli.errors import BAD_INPUT, FAILED, CliError
from daemon.model import pids


def foreground_runs(home: Path) -> list[dict[str, Any]]:
    """The active runs a living `flow run` supervises."""
    from cli import offline_runs

    return [r for r in offline_runs.runs(home, include_ended=False) if offline_runs.being_run(r)]


def stop_without_daemon(
    home: Path, ref: str | None, *, every: bool, force: bool
) -> list[Any] | None:
    """Stop the foreground run `ref` names (the only one when None; all with `every`);
    the runs as they ended. None when there is no such run to stop this way."""
    from cli import offline_runs, render

    live = foreground_runs(home)
    if not live:
        return None
    if every:
        targets = live
    elif ref is not None:
        try:
            info = offline_runs.resolve(home, ref)
        except CliError:
            return None
        if not offline_runs.being_run(info):
            return None  # a daemon's run: only a daemon stops it
        targets = [info]
    elif len(live) == 1:
        targets = live
    else:
        names = ", ".join(render.run_label(r, str(r["id"])[:13]) for r in live)
        raise CliError(f"several runs are active ({names}): name one, or pass --all", BAD_INPUT)
    for info in targets:
        _ask(info, force)
    return [_wait_ended(home, info) for info in targets]


def _ask(info: dict[str, Any], force: bool) -> None:
    found = pids.foreground_process(info)
    if found is None or not found[1]:
        return  # it ended meanwhile
    for sent, number in enumerate(pids.foreground_stop_signals(force)):
        if sent:
            time.sleep(pids.SECOND_SIGNAL_S)
        try:
            os.kill(found[0], number)
        except ProcessLookupError:
            return
        except PermissionError:
            raise CliError(f"run {info['id']}: its flow run process (pid {found[0]}) is "
                           "another user's", FAILED) from None  # fmt: skip


def _wait_ended(home: Path, info: dict[str, Any]) -> dict[str, Any]:
    from cli import offline_runs

    deadline = time.monotonic() + pids.FOREGROUND_STOP_S
    while time.monotonic() < deadline:
        info = offline_runs.resolve(home, str(info["id"]))
        if info["status"] not in offline_runs.ACTIVE or not offline_runs.being_run(info):
            return info
        time.sleep(pids.FOREGROUND_POLL_S)
    return info
