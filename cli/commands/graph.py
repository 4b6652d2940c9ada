"""`flow graph FILE`: draw a dataflow as Mermaid text or a self-contained HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cli.errors import BAD_INPUT, FAILED, OK

if TYPE_CHECKING:
    from daemon.model.descriptor import Dataflow


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "graph",
        help="draw a dataflow (Mermaid text or an HTML page)",
        description="Print the dataflow's graph as Mermaid text, or write it as a "
        "self-contained HTML page with --html.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the dataflow YAML file")
    parser.add_argument(
        "--mermaid", action="store_true", help="print Mermaid flowchart text (the default)"
    )
    parser.add_argument("--html", metavar="OUT", type=Path, help="write an HTML page to OUT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.graph_html import render as to_html
    from cli.graph_mermaid import to_mermaid
    from cli.render import error, info, out

    dataflow = load(Path(args.file))
    if dataflow is None:
        return BAD_INPUT
    if args.html is not None:
        target = Path(args.html)
        try:
            target.write_text(to_html(dataflow), encoding="utf-8")
        except OSError as exc:
            error(f"cannot write {target}: {exc.strerror or exc}")
            return FAILED
        info(str(target))
        if not args.mermaid:
            return OK
    # soft_wrap: Mermaid lines must not be folded at the terminal's width
    out.print(to_mermaid(dataflow), end="", markup=False, highlight=False, soft_wrap=True)
    return OK


def load(path: Path) -> Dataflow | None:
    """The validated dataflow, or None after printing why not (shared with `flow check`)."""
    from cli.render import err, error
    from daemon.model.descriptor import parse_dataflow
    from daemon.model.errors import DataflowInvalid

    if not path.exists():
        error(f"no such file: {path}")
        return None
    if path.is_dir():
        error(f"{path} is a folder, not a dataflow file")
        return None
    try:
        return parse_dataflow(path)
    except DataflowInvalid as exc:
        for problem in exc.problems:
            # plain and unwrapped: each problem stays one greppable line
            err.print(problem, markup=False, highlight=False, soft_wrap=True)
        return None
