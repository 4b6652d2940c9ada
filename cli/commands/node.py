"""`flow node list|info|stop|restart`: one node of a live run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cli.durations import duration_arg
from cli.run_ref import add_run_argument, target_run


def register(sub: Any) -> None:
    p = sub.add_parser(
        "node",
        help="list, inspect, stop or restart the nodes of a run",
        description="The nodes of a live run: list, inspect, stop or restart one, or edit "
        "the graph (add, remove, connect, disconnect).",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = _verb(verbs, "list", "every node of a run, with its inputs")
    add_run_argument(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    for verb, text in (
        ("info", "one node in detail: wiring, queues, drops, rates"),
        ("stop", "stop one node (STOP, grace, SIGTERM, SIGKILL); one waiting out its restart"
                 " delay is not started again; an attached dynamic one gets STOP and is let go"),
        ("restart", "restart one node in its own slot, with a new generation (not a dynamic"
                    " one: its process is not flow's)"),
    ):
        one = _verb(verbs, verb, text)
        add_run_argument(one)
        one.add_argument("node", metavar="NODE", help="node id")
        if verb == "info":
            one.add_argument("--json", action="store_true", help="print JSON")
        else:
            one.add_argument(
                "--grace",
                type=duration_arg,
                default=None,
                metavar="D",
                help="how long the node gets after STOP before SIGTERM (e.g. 2s; default 10s)",
            )
    add = _verb(verbs, "add", "add one node (a YAML file with one node) to a run (an id removed"
                " from it before may be added again)")
    add_run_argument(add)
    add.add_argument("file", nargs="?", default=None, metavar="FILE",
                     help="YAML with one node mapping")  # fmt: skip
    add.add_argument("--from-yaml", default=None, metavar="FILE",
                     help="the same as FILE (dora's spelling)")  # fmt: skip
    _dataflow_alias(add)
    remove = _verb(verbs, "remove", "stop a node and take it out of the graph")
    add_run_argument(remove)
    remove.add_argument("node", metavar="NODE", help="node id")
    _dataflow_alias(remove)
    for verb, text in (("connect", "map SRC/OUTPUT to NODE/INPUT (a second source on "
                                   "an input joins it: fan-in)"),
                       ("disconnect", "remove the mapping SRC/OUTPUT -> NODE/INPUT (a node "
                                      "whose last data input it was gets ALL_INPUTS_CLOSED "
                                      "and, as most do, ends: to move an input to another "
                                      "source, connect the new one first)")):  # fmt: skip
        edit = _verb(verbs, verb, text)
        add_run_argument(edit)
        edit.add_argument("source", metavar="SRC/OUTPUT", help="the sending output")
        edit.add_argument("target", metavar="NODE/INPUT", help="the receiving input")
        _dataflow_alias(edit)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_nodes import (
        NodeInfo,
        NodeList,
        NodeRestart,
        NodeStop,
    )

    if args.verb in ("add", "remove", "connect", "disconnect"):
        _apply_aliases(args)
    args.run = target_run(args.run)
    if args.verb in ("add", "remove", "connect", "disconnect"):
        return edit(args)
    if args.verb == "list":
        reply = client.call(NodeList(run=args.run))
        if args.json:
            for node in reply.nodes:
                render.out.print(json.dumps(node), markup=False, highlight=False)
        else:
            print_nodes(reply.nodes)
        return 0
    if args.verb == "info":
        node = client.call(NodeInfo(run=args.run, node=args.node)).node
        if args.json:
            render.out.print(json.dumps(node), markup=False, highlight=False)
        else:
            print_detail(node)
        return 0
    verb = NodeStop if args.verb == "stop" else NodeRestart
    grace = None if args.grace is None else Seconds(args.grace)
    node = client.call(verb(run=args.run, node=args.node, grace=grace), timeout=120.0).node
    render.info(
        f"node {node['id']}: {node['status']} (generation {node['generation']}, "
        f"pid {node['pid'] or '-'})"
    )
    return 0


def input_summary(node: dict[str, Any]) -> str:
    """`data: 3 queued, 0 dropped, 98.0/s; tick: timer` (`-` for a figure not known, or not
    current: a node that is not running)."""
    stats = (node.get("stats") or {}).get("inputs") or {}
    rates = (node.get("stats") or {}).get("rates") or {}
    parts = []
    for input_id, source in (node.get("inputs") or {}).items():
        one = stats.get(input_id)
        if one is None:
            parts.append(f"{input_id} <- {source}")
        else:  # queue and rate: `-` once its generation ended (daemon/model/node_stats.py)
            rate = rates.get(input_id)
            queued = one.get("queued", "-")
            text = f"{input_id}: {queued} queued, {one.get('dropped', 0)} dropped, "
            parts.append(text + ("-" if rate is None else f"{rate:.1f}") + "/s")
    return "; ".join(parts) or "-"


def print_nodes(nodes: list[dict[str, Any]]) -> None:
    from cli import render

    # a run placed on several machines (docs/cluster.md) gets a MACHINE column
    placed = any(node.get("machine") for node in nodes)
    rows: list[tuple[list[render.Cell], list[render.Cell]]] = []
    for node in nodes:
        cells: list[render.Cell] = [
            str(node["id"]),
            *([str(node.get("machine") or "-")] if placed else []),
            render.status_text(str(node["status"])),
            str(node["generation"]),
            str(node["pid"] or "-"),
            str(node["restarts"]),
            input_summary(node),
        ]
        rows.append((cells, []))
    machine = ["MACHINE"] if placed else []
    render.table(["NODE", *machine, "STATUS", "GEN", "PID", "RESTARTS", "INPUTS"], rows)


def print_detail(node: dict[str, Any]) -> None:
    from cli import render
    from cli.commands.top import latency_text

    render.info(f"node {node['id']} of run {node['run']}")
    for key in ("machine", "status", "generation", "pid", "restarts", "exit_code", "signal"):
        if node.get(key) is not None:
            render.info(f"  {key + ':':<12}{node[key]}")
    stats = node.get("stats") or {}
    rows: list[tuple[list[render.Cell], list[render.Cell]]] = []
    for input_id, source in (node.get("inputs") or {}).items():
        one = (stats.get("inputs") or {}).get(input_id) or {}
        rate = (stats.get("rates") or {}).get(input_id)
        rows.append(
            (
                # MESSAGES and BYTES: handed to the node's code (a node too old to say
                # `delivered`: what arrived); DROPPED and QUEUED are apart from them
                [f"in  {input_id}", source, str(one.get("delivered", one.get("received", "-"))),
                 str(one.get("bytes", "-")), str(one.get("dropped", "-")),
                 str(one.get("queued", "-")), "-" if rate is None else f"{rate:.1f}",
                 latency_text(one.get("latency_p50_us")),
                 latency_text(one.get("latency_p99_us"))],
                [],
            )
        )  # fmt: skip
    for output_id in node.get("outputs") or []:
        one = (stats.get("outputs") or {}).get(output_id) or {}
        rate = (stats.get("rates") or {}).get(f"out:{output_id}")
        rows.append(
            (
                [f"out {output_id}", "", str(one.get("sent", "-")), str(one.get("bytes", "-")),
                 str(one.get("dropped", "-")), "", "-" if rate is None else f"{rate:.1f}", "", ""],
                [],
            )
        )  # fmt: skip
    if rows:
        render.table(["PORT", "SOURCE", "MESSAGES", "BYTES", "DROPPED", "QUEUED", "RATE/S",
                      "P50", "P99"], rows)  # fmt: skip
    for input_id, one in (stats.get("inputs") or {}).items():
        if one.get("refused"):  # repeats, an older generation's, or frames that do not add up
            render.info(f"in {input_id}: {one['refused']} refused (a repeat, an older "
                        "generation's, after its source closed, or a frame that did not "
                        "add up)")  # fmt: skip
    outputs = (stats.get("outputs") or {}).values()
    if any(one.get("dropped") for one in outputs):
        render.info("an output's MESSAGES counts each message once, its DROPPED each edge "
                    "that missed one (summed over its edges)")


def edit(args: argparse.Namespace) -> int:
    """`add`, `remove`, `connect`, `disconnect`: validated by the daemon, then applied."""

    from cli import client, render
    from cli.commands.start import read_dataflow
    from daemon.model.requests_base import YamlText
    from daemon.model.requests_nodes import (
        NodeAdd,
        NodeConnect,
        NodeDisconnect,
        NodeRemove,
    )

    if args.verb in ("add", "remove"):
        if args.verb == "add":
            # as `flow start` reads a file: missing, a FIFO, huge or not UTF-8, in one line
            path, text = read_dataflow(args.file)
            _refuse_syntax_errors(path)
            request: Any = NodeAdd(run=args.run, path=str(path), text=YamlText(text))
        else:
            request = NodeRemove(run=args.run, node=args.node)
        node = client.call(request, timeout=60.0).node
        render.info(f"node {node} {'added' if args.verb == 'add' else 'removed'}")
        return 0
    cls = NodeConnect if args.verb == "connect" else NodeDisconnect
    reply = client.call(cls(run=args.run, source=args.source, target=args.target), timeout=60.0)
    arrow = "->" if args.verb == "connect" else "-/->"
    render.info(f"{args.verb}ed {reply.source} {arrow} {reply.target}")
    return 0


def _refuse_syntax_errors(path: Path) -> None:
    """A node whose Python script does not compile is refused before the run is touched,
    as `flow start` refuses a dataflow with one (a failed node would fail the run)."""
    from cli.commands.check import node_file
    from cli.errors import dataflow_invalid
    from daemon.model.python_scripts import python_syntax_problems

    single = node_file(path)
    problems = python_syntax_problems(single) if single is not None else []
    if problems:
        raise dataflow_invalid(problems)


def _dataflow_alias(parser: Any) -> None:
    parser.add_argument("-d", "--dataflow", default=None, metavar="RUN",
                        help="the same as RUN (dora's spelling)")  # fmt: skip


def _apply_aliases(args: argparse.Namespace) -> None:
    """dora's `--dataflow N` and `--from-yaml F` fold into RUN and FILE; given twice and
    different, one line says so."""
    from cli.errors import BAD_INPUT, CliError

    if args.verb == "add":
        if args.from_yaml is not None:
            if args.file is not None:
                if args.run is not None:
                    raise CliError("give the node file once: FILE or --from-yaml", BAD_INPUT)
                args.run = args.file  # `add RUN --from-yaml F`: the one positional is RUN
            args.file = args.from_yaml
        elif args.file is None:
            if args.run is None:
                raise CliError("name the node file: flow node add [RUN] FILE", BAD_INPUT)
            args.run, args.file = None, args.run  # one positional: the file
    if args.dataflow is not None:
        if args.run is not None and args.run != args.dataflow:
            raise CliError(
                f"two runs named: {args.run} and --dataflow {args.dataflow}", BAD_INPUT
            )
        args.run = args.dataflow


def _verb(verbs: Any, name: str, text: str) -> Any:
    """A sub-verb whose description is its help as a sentence."""
    return verbs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
