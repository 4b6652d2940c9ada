"""`flow top`: a live view of every run's nodes: CPU, memory, rates, drops."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "top",
        help="live CPU, memory, message rates and drops of every node",
        description="A live table of every node of every run: status, pid, CPU, memory, "
        "input rate, queued and dropped messages.",
    )
    p.add_argument("--once", action="store_true", help="print one JSON snapshot and exit")
    p.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from daemon.model.convert import unstructure
    from daemon.model.requests import Seconds, Top

    if args.once:
        snapshot = client.call(Top(sample_s=Seconds(0.5)), timeout=10.0)
        render.out.print(json.dumps(unstructure(snapshot)), markup=False, highlight=False)
        return 0
    from rich.live import Live

    client.call(Top())  # the first call only starts the CPU sampling
    with Live(console=render.out, auto_refresh=False) as live:
        while True:
            time.sleep(max(args.interval, 0.2))
            live.update(table(unstructure(client.call(Top()))), refresh=True)


def table(snapshot: dict[str, Any]) -> Any:
    from rich.table import Table

    view = Table(title=time.strftime("flow top  %H:%M:%S"), expand=True)
    for header in ("RUN", "NODE", "STATUS", "PID", "CPU%", "RSS", "RATE/S", "QUEUED", "DROPPED"):
        view.add_column(header, justify="left" if header in ("RUN", "NODE", "STATUS") else "right")
    for run in snapshot["runs"]:
        for node in run["nodes"]:
            rates = node.get("rates") or {}
            rate = sum(v for k, v in rates.items() if not k.startswith("out:"))
            rss = node.get("rss_bytes")
            view.add_row(
                run.get("name") or run["id"][:13],
                node["id"],
                node["status"],
                str(node.get("pid") or "-"),
                "-" if node.get("cpu_percent") is None else f"{node['cpu_percent']:.1f}",
                "-" if rss is None else f"{rss / (1 << 20):.1f}M",
                f"{rate:.1f}",
                str(node.get("queued", 0)),
                str(node.get("dropped", 0)),
            )
    return view
