"""`flow stop [RUN] [--all]`: stop runs (STOP, then SIGTERM after the grace, then SIGKILL)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from cli.durations import duration_arg
from cli.run_ref import add_run_argument

DEFAULT_GRACE = 10.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "stop",
        help="stop a run (the only active one when RUN is omitted)",
        description="Stop a run: STOP to every node, SIGTERM after the grace, SIGKILL after "
        "half that again; wait until it has ended.",
    )
    add_run_argument(p)
    p.add_argument("--name", default=None, metavar="NAME",
                   help="the run to stop, by its name (dora's spelling of RUN)")  # fmt: skip
    p.add_argument("--all", action="store_true", help="stop every active run")
    p.add_argument(
        "--grace",
        "--grace-duration",  # dora's
        type=duration_arg,
        default=None,
        metavar="D",
        help="how long nodes get after STOP before SIGTERM (e.g. 2s; default 10s)",
    )
    p.add_argument("--force", action="store_true", help="kill the nodes without a grace")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import render
    from cli.errors import BAD_INPUT, CliError, DaemonUnreachable
    from cli.foreground_stop import stop_without_daemon
    from node_sdk import paths

    if args.name is not None:  # dora's `stop --name N`: the run named N
        if args.run is not None and args.run != args.name:
            raise CliError("give RUN or --name, not both", BAD_INPUT)
        args.run = args.name
    try:
        return _through_daemon(args)
    except DaemonUnreachable:
        # no daemon: a run a `flow run` process supervises is stopped by asking it
        runs = stop_without_daemon(paths.flow_home(), args.run, every=args.all,
                                   force=args.force)  # fmt: skip
        if runs is None:
            raise
    for info in runs:
        render.run_result(info)
    return 0


def _through_daemon(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.commands.config import load_settings
    from cli.errors import BAD_INPUT, CliError
    from cli.run_ref import target_run
    from cli.waiting import Background, lost_machine_wait, wait_stopped
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_runs import List, Stop, StopAll, Wait

    grace = 0.0 if args.force else args.grace
    seconds = None if grace is None else Seconds(grace)
    if args.all:
        if args.run:
            raise CliError("give RUN or --all, not both", BAD_INPUT)
        before = client.call(List()).runs
        budget = request_budget(grace) + lost_machine_wait(before, load_settings)
        stopping: Background[Any] = Background(
            lambda: client.call(StopAll(grace=seconds, force=args.force), timeout=budget).runs
        )
    else:
        ref = target_run(args.run, all_hint=True)
        before = [client.call(Wait(run=ref, timeout=Seconds(0.0))).run]
        budget = request_budget(grace) + lost_machine_wait(before, load_settings)
        stopping = Background(
            lambda: [
                client.call(Stop(run=ref, grace=seconds, force=args.force), timeout=budget).run
            ]
        )
    shown = DEFAULT_GRACE if grace is None else grace
    wait_stopped(before, shown, budget, until=lambda: stopping.done)
    runs = stopping.result()
    if args.all and not runs:
        render.info("no active runs")
    for info in runs:
        render.run_result(wait_done(info, budget))  # a run that failed was still stopped: 0
    return 0


def request_budget(grace: float | None) -> float:
    """How long a stop may take: the grace, half of it again for SIGTERM, and slack; and
    as long as the daemon waits for a stalled keeper, whose nodes' ends it reports."""
    from daemon.model.keeper_messages import KEEPER_HUNG_S

    return (DEFAULT_GRACE if grace is None else grace) * 1.5 + 10.0 + KEEPER_HUNG_S


def wait_done(info: dict[str, Any], budget: float, home: Path | None = None) -> dict[str, Any]:
    """The run's RunInfo once it has ended (or as it is when the budget runs out)."""
    from cli import client
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_runs import Wait

    deadline = time.monotonic() + budget
    while info.get("ended") is None and info.get("status") in ("starting", "running"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        reply = client.call(
            Wait(run=info["id"], timeout=Seconds(min(left, 5.0))),
            timeout=min(left, 5.0) + 10.0,
            home=home,
        )
        info = reply.run
        if reply.done:
            break
    return info
