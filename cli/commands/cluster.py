"""`flow cluster token|status|remove`: the machines of a cluster (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cli.render import Cell
    from daemon.model.replies_cluster import ClusterStatusReply


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cluster",
        help="join tokens, machines and links of a cluster of machines",
        description="Several machines: print or revoke a join token (on the coordinator), list "
        "the machines and their links, remove a machine. docs/cluster.md tells the set-up.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    token = _verb(verbs, "token", "print a one-line join token, or revoke one (coordinator)")
    token.add_argument("--ttl", type=_duration, default=None, metavar="DURATION",
                       help="how long the token admits machines (default 1h, at most 30d)")
    token.add_argument("--revoke", default=None, metavar="TOKEN_ID",
                       help="revoke a token: its id (printed with it) or its whole text")
    status = _verb(verbs, "status", "every machine, its address, state and last heartbeat")
    status.add_argument("--json", action="store_true", help="print JSON")
    remove = _verb(verbs, "remove", "remove an admitted machine: its key is refused from now on")
    remove.add_argument("name", metavar="NAME", help="the machine's name")
    p.set_defaults(func=run)


def _verb(verbs: Any, name: str, text: str) -> Any:
    return verbs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def _duration(text: str) -> float:
    from daemon.model.units import UnitError, parse_duration

    try:
        return parse_duration(text)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from daemon.model.requests_base import Name, Seconds
    from daemon.model.requests_cluster import (
        ClusterRemove,
        ClusterRevoke,
        ClusterStatus,
        ClusterToken,
    )

    if args.verb == "token":
        if args.revoke is not None:
            client.call(ClusterRevoke(token=args.revoke))
            render.info("token revoked: it admits no machine from now on")
            return 0
        ttl = None if args.ttl is None else Seconds(args.ttl)
        issued = client.call(ClusterToken(ttl=ttl))
        render.out.print(issued.token, markup=False, highlight=False, soft_wrap=True)
        # on stderr: `TOKEN=$(flow cluster token)` takes the token alone
        render.err.print(f"token {issued.id}: on the new machine, flow up --machine NAME "
                         f"--join TOKEN; revoke it with flow cluster token --revoke {issued.id}",
                         markup=False, highlight=False)  # fmt: skip
        return 0
    if args.verb == "remove":
        client.call(ClusterRemove(name=Name(args.name)))
        render.info(f"machine {args.name} removed: its key is refused from now on")
        return 0
    reply = client.call(ClusterStatus())
    if args.json:
        from daemon.model.convert import unstructure

        render.out.print(json.dumps(unstructure(reply)), markup=False, highlight=False)
        return 0
    return _print_status(reply)


def _print_status(reply: ClusterStatusReply) -> int:
    from cli import render
    from cli.durations import human_age

    if reply.role == "none":
        render.info("this daemon is in no cluster (flow up --machine NAME --listen|--join)")
        return 0
    if reply.role == "member":
        age = "never" if reply.link_age_s is None else f"{human_age(reply.link_age_s)} ago"
        render.info(f"machine {reply.machine}: member of the cluster of "
                    f"{reply.coordinator_address}")  # fmt: skip
        render.info(f"link: {reply.link} (last heard {age})")
        return 0
    rows: list[tuple[list[Cell], list[Cell]]] = []
    for m in reply.machines:
        age = "-" if m.heartbeat_age_s is None else f"{m.heartbeat_age_s:.1f}s"
        nodes = "-" if m.nodes is None else str(m.nodes)
        cells: list[Cell] = [m.name, m.role, m.address or "-", render.status_text(m.state), age,
                 m.fingerprint, nodes]  # fmt: skip
        rows.append((cells, []))
    render.table(["MACHINE", "ROLE", "ADDRESS", "STATE", "HEARTBEAT", "KEY", "NODES"], rows)
    return 0
