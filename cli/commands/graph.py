"""`flow graph FILE`: draw a dataflow as Mermaid text or a self-contained HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cli.errors import FAILED, OK

if TYPE_CHECKING:
    from daemon.model.descriptor import Dataflow


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "graph",
        help="draw a dataflow (Mermaid text or an HTML page)",
        description="Print the dataflow's graph as Mermaid text, or write it as a "
        "self-contained HTML page with --html (and show it with --open).",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the dataflow YAML file")
    parser.add_argument(
        "--mermaid", action="store_true", help="print Mermaid flowchart text (the default)"
    )
    parser.add_argument("--html", metavar="OUT", type=Path, help="write an HTML page to OUT")
    parser.add_argument(
        "--open",
        action="store_true",
        help="open the HTML page in a web browser (without --html: a private temporary file)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.graph_html import render as to_html
    from cli.graph_mermaid import to_mermaid
    from cli.render import error, info, out

    dataflow = load(Path(args.file))
    if args.html is not None or args.open:
        try:
            target = _write_page(to_html(dataflow), args.html, dataflow.path.stem)
        except OSError as exc:
            error(f"cannot write {args.html or 'a temporary file'}: {exc.strerror or exc}")
            return FAILED
        info(str(target))
        if args.open:
            _open(target)
        if not args.mermaid:
            return OK
    # soft_wrap: Mermaid lines must not be folded at the terminal's width
    out.print(to_mermaid(dataflow), end="", markup=False, highlight=False, soft_wrap=True)
    return OK


def _write_page(page: str, out: Path | None, stem: str) -> Path:
    """Write the page to `out`, or to a new temporary file only this user can read."""
    import os
    import tempfile

    if out is not None:
        out.write_text(page, encoding="utf-8")
        return out
    fd, name = tempfile.mkstemp(prefix=f"flow-graph-{stem}-", suffix=".html")  # mode 0600
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(page)
    return Path(name)


def _open(page: Path) -> None:
    """Show the page in the user's browser ($BROWSER is honoured); say so when none is."""
    import webbrowser

    from cli.render import warning

    try:
        opened = webbrowser.open(page.resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        warning(f"no web browser could be started: open {page} yourself")


def load(file: Path) -> Dataflow:
    """The validated dataflow; CliError (exit 2) when the file is missing, unreadable or
    invalid, worded as `flow start` words it (shared with `flow check` and `flow build`)."""
    from cli.commands.start import read_dataflow
    from cli.errors import dataflow_invalid
    from daemon.model.descriptor import parse_dataflow
    from daemon.model.errors import DataflowInvalid

    _, text = read_dataflow(str(file))
    try:
        # the path as the user wrote it: problems name the file as they know it
        return parse_dataflow(file, text)
    except DataflowInvalid as exc:
        raise dataflow_invalid(exc.problems) from None
