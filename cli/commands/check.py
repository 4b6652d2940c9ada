"""`flow check FILE`: validate a dataflow file and its Python nodes; every problem, one per line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cli.errors import OK

_TIMERS = ("flow/timer/", "dora/timer/")

if TYPE_CHECKING:
    from daemon.model.descriptor import Dataflow


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check",
        help="validate a dataflow file",
        description="Validate a dataflow YAML file and compile its Python nodes (without "
        "running them): print each problem as FILE:LINE: cause under the same header "
        "flow start prints, and exit 2; or print a summary and exit 0. Nothing runs. A "
        "file with one node mapping (for `flow node add`) is checked as that node.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the dataflow YAML file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.commands.graph import load
    from cli.errors import dataflow_invalid
    from cli.render import info
    from daemon.model.python_scripts import python_syntax_problems

    single = node_file(Path(args.file))
    if single is not None:
        problems = python_syntax_problems(single)
        if problems:
            raise dataflow_invalid(problems)
        info(f"ok: node {single.nodes[0].id}, a file for `flow node add` (its sources are "
             "checked against the run it joins)")  # fmt: skip
        return OK
    dataflow = load(Path(args.file))
    problems = python_syntax_problems(dataflow)
    if problems:
        raise dataflow_invalid(problems)
    n, m = len(dataflow.nodes), dataflow.connections
    info(f"ok: {n} node{'' if n == 1 else 's'}, {m} connection{'' if m == 1 else 's'}")
    return OK


def node_file(file: Path) -> Dataflow | None:
    """A file holding one node mapping (dora's `node add --from-yaml` file), checked as the
    node it adds, to a graph of stand-ins for the nodes its inputs name (those are checked
    against the run it joins); None for anything else."""
    import json

    from cli.commands.start import read_dataflow
    from cli.errors import dataflow_invalid
    from daemon.model.descriptor import MAX_YAML_BYTES, Dataflow, load_text, parse_dataflow
    from daemon.model.errors import DataflowInvalid
    from daemon.model.node_snippet import parse_added_node

    _, text = read_dataflow(str(file))
    try:
        value = load_text(str(file), text, MAX_YAML_BYTES).value
        if not isinstance(value, dict) or "nodes" in value or "id" not in value:
            return None
        stand_ins: dict[str, set[str]] = {}
        inputs = value.get("inputs")
        for spec in (inputs or {}).values() if isinstance(inputs, dict) else ():
            source = spec.get("source") if isinstance(spec, dict) else spec
            if isinstance(source, str) and "/" in source and not source.startswith(_TIMERS):
                owner, _, output = source.partition("/")
                stand_ins.setdefault(owner, set()).add(output)
        others = [{"id": n, "path": "dynamic", "outputs": sorted(o)} for n, o in stand_ins.items()]
        graph = (
            parse_dataflow(file.resolve(), json.dumps({"nodes": others}))
            if others
            else Dataflow(path=file.resolve(), name=None, env={}, recover=True, nodes=())
        )
    except DataflowInvalid:
        return None  # not even stand-ins can be made of it: read it as a dataflow file
    try:
        node = parse_added_node(graph, file.resolve(), text)
    except DataflowInvalid as exc:
        raise dataflow_invalid(exc.problems) from None
    return Dataflow(path=file.resolve(), name=None, env={}, recover=True, nodes=(node,))
