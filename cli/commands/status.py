"""`flow status`: the daemon's pid, version, home, uptime, active runs and degradations."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="show the flow daemon's state",
        description="Show the daemon's pid, version, home, uptime and active runs, and every "
        "degraded auxiliary function as a warning. Exit status: 0 when the daemon runs, 3 "
        "(one line: not running) when no daemon serves this FLOW_HOME.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.durations import human_age
    from cli.errors import UNREACHABLE, DaemonUnreachable
    from daemon.model.requests_runs import Status

    try:
        info = client.call(Status())
    except DaemonUnreachable:
        render.info(f"flow daemon not running (home {client.home_path()}); start it with flow up")
        return UNREACHABLE
    render.info(f"flow daemon running (pid {info.pid}, version {info.version})")
    render.info(f"home:        {info.home}")
    render.info(f"uptime:      {human_age(info.uptime_s)}")
    if info.metrics is not None:
        render.info(f"metrics:     {info.metrics}")
    render.info(f"active runs: {info.runs_active}")
    for what in info.degraded:
        render.warning(f"degraded: {what}")
    return 0
