"""`flow param list|get|set|delete`: a node's parameters, changed while it runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.durations import duration_arg
from cli.run_ref import add_run_argument, target_run

MAX_TIMEOUT_S = 60.0  # the daemon waits no longer (daemon/control/params.py)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "param",
        help="list, read, set or delete the parameters of a running node",
        description="A node's parameters (docs/parameters.md): its YAML `params:`, changed "
        "while it runs. A change is sent to the node as a PARAM event and kept only once the "
        "node took it: a refused value, or a node that is not running or does not answer "
        "in time, fails the command and changes nothing.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, text in (
        ("list", "every parameter of a node, as JSON"),
        ("get", "one parameter's value, as JSON"),
        ("set", "set one parameter of a running node (VALUE is JSON: 3, 0.5, true, '\"a\"')"),
        ("delete", "delete one parameter of a running node"),
    ):
        one = verbs.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
        add_run_argument(one)
        one.add_argument("node", metavar="NODE", help="node id")
        if verb != "list":
            one.add_argument("key", metavar="KEY", help="parameter name")
        if verb == "set":
            one.add_argument("value", metavar="VALUE", help="the value, as JSON text")
        if verb in ("set", "delete"):
            one.add_argument(
                "--timeout", type=duration_arg, default=None, metavar="D",
                help="how long the node has to answer (e.g. 10s; default 5s; 0 < D <= 60s)",
            )  # fmt: skip
        if verb == "list":
            one.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.errors import BAD_INPUT, CliError
    from daemon.model.replies_base import ParamText
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_nodes import ParamList, ParamSet

    args.run = target_run(args.run)
    if args.verb in ("list", "get"):
        values = client.call(ParamList(run=args.run, node=args.node)).params
        if args.verb == "get":
            if args.key not in values:
                raise CliError(f"node {args.node!r} has no parameter {args.key!r}")
            render.out.print(values[args.key], markup=False, highlight=False)
        elif args.json:
            shown = {key: json.loads(text) for key, text in values.items()}
            render.out.print(json.dumps(shown), markup=False, highlight=False)
        else:
            rows: list[tuple[list[render.Cell], list[render.Cell]]] = [
                ([key, text], []) for key, text in values.items()
            ]
            render.table(["KEY", "VALUE"], rows) if rows else render.info("no parameters")
        return 0
    if args.timeout is not None and not 0 < args.timeout <= MAX_TIMEOUT_S:
        raise CliError(f"--timeout {args.timeout:g}s: the node's answer is waited for more than"
                       f" 0 and at most {MAX_TIMEOUT_S:g} s", BAD_INPUT)  # fmt: skip
    timeout = None if args.timeout is None else Seconds(args.timeout)
    value = ParamText(args.value) if args.verb == "set" else None
    request = ParamSet(run=args.run, node=args.node, key=args.key, value=value, timeout=timeout)
    wait = 5.0 + (MAX_TIMEOUT_S if timeout is None else float(timeout))
    values = client.call(request, timeout=wait).params
    if args.verb == "set":
        render.info(f"node {args.node}: {args.key} = {values.get(args.key)} (taken by the node)")
    else:
        render.info(f"node {args.node}: {args.key} deleted (taken by the node)")
    return 0
