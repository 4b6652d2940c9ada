"""`flow restart RUN`: stop a run if needed and start a new run of the same file."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restart",
        help="start a new run of the same dataflow file",
        description="Stop RUN if it is active, then start a new run of its dataflow file.",
    )
    p.add_argument("run", metavar="RUN", help="run id, id prefix or name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from daemon.model.requests import Restart

    info = client.call(Restart(run=args.run), timeout=60.0).run
    render.info(
        f"restarted {args.run} as {info['id']}" + (f" ({info['name']})" if info.get("name") else "")
    )
    return 0
