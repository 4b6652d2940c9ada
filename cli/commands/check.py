"""`flow check FILE`: validate a dataflow file and print every problem, one per line."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.errors import BAD_INPUT, OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check",
        help="validate a dataflow file",
        description="Validate a dataflow YAML file: print each problem as FILE:LINE: field: "
        "cause and exit 2, or print a summary and exit 0. Nothing runs.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the dataflow YAML file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.commands.graph import load

    dataflow = load(Path(args.file))
    if dataflow is None:
        return BAD_INPUT
    from cli.render import info

    n, m = len(dataflow.nodes), dataflow.connections
    info(f"ok: {n} node{'' if n == 1 else 's'}, {m} connection{'' if m == 1 else 's'}")
    return OK
