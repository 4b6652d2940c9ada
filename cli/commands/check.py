"""`flow check FILE`: validate a dataflow file and its Python nodes; every problem, one per line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cli.errors import OK

if TYPE_CHECKING:
    from daemon.model.descriptor import Dataflow


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check",
        help="validate a dataflow file",
        description="Validate a dataflow YAML file and compile its Python nodes (without "
        "running them): print each problem as FILE:LINE: cause under the same header "
        "flow start prints, and exit 2; or print a summary and exit 0. Nothing runs.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the dataflow YAML file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.commands.graph import load
    from cli.errors import dataflow_invalid
    from cli.render import info

    dataflow = load(Path(args.file))
    problems = python_syntax_problems(dataflow)
    if problems:
        raise dataflow_invalid(problems)
    n, m = len(dataflow.nodes), dataflow.connections
    info(f"ok: {n} node{'' if n == 1 else 's'}, {m} connection{'' if m == 1 else 's'}")
    return OK


def python_syntax_problems(dataflow: Dataflow) -> list[str]:
    """One line per Python node that does not compile: `script:LINE: ...`, as an editor
    or a terminal jumps to it."""
    problems = []
    for node in dataflow.nodes:
        if node.executable is None or not node.executable.endswith(".py"):
            continue
        problem = _compile_problem(Path(node.executable))
        if problem is not None:
            problems.append(f"{problem} (node {node.id!r})")
    return problems


def _compile_problem(script: Path) -> str | None:
    """Why `script` does not compile, or None; it is compiled, never run."""
    import warnings

    try:
        source = script.read_bytes()
    except OSError as exc:
        return f"{script}:1: cannot read: {exc.strerror or exc}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an invalid escape warns: not our concern here
            compile(source, str(script), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"{script}:{exc.lineno or 1}: syntax error: {exc.msg}"
    except ValueError as exc:  # null bytes, an undecodable source
        return f"{script}:1: cannot compile: {exc}"
    return None
