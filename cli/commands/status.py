"""`flow status`: the daemon's pid, version, home, uptime, active runs and degradations."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="show the flow daemon's state")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.durations import human_age

    info = client.request("status", {})
    render.info(f"flow daemon running (pid {info.get('pid')}, version {info.get('version')})")
    render.info(f"home:        {info.get('home')}")
    render.info(f"uptime:      {human_age(float(info.get('uptime_s') or 0))}")
    render.info(f"active runs: {info.get('runs_active', 0)}")
    for what in info.get("degraded") or []:
        render.warning(f"degraded: {what}")
    return 0
