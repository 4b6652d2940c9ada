"""`flow logs RUN [NODE]`: show a run's node logs; `-f` follows them until the run ends."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from cli.durations import since_arg
from daemon.model.logformat import LogRecord, parse_line

Entry = tuple[str, LogRecord]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "logs",
        help="show a run's node logs",
        description="Print a run's node logs, merged by time; filter them, or follow them "
        "until the run ends.",
    )
    p.add_argument("run", metavar="RUN", help="run id, id prefix or name")
    p.add_argument("node", nargs="?", metavar="NODE", help="only this node")
    p.add_argument("-f", "--follow", action="store_true", help="follow until the run ends")
    p.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    p.add_argument(
        "--since",
        type=since_arg,
        default=None,
        metavar="D",
        help="only lines newer than a duration ago (10m) or a time (ISO)",
    )
    p.add_argument("--grep", default=None, metavar="S", help="only lines containing S")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client
    from cli.errors import BAD_INPUT, CliError
    from cli.follow import LinePrinter, LogFollower, follow_run
    from daemon.model.requests import Logs

    if args.tail is not None and args.tail < 0:
        raise CliError("--tail must be 0 or more", BAD_INPUT)
    reply = client.call(Logs(run=args.run, node=args.node))
    info, files = reply.run, reply.files
    printer = LinePrinter(files, prefix=len(files) > 1, grep=args.grep, since=args.since)
    follower = LogFollower(files)
    try:
        history = merge(
            {node: rotated_records(Path(path)) for node, path in files.items()},
            follower.poll(final=not args.follow),
        )
        shown = [(n, r) for n, r in history if printer.accepts(r)]
        if args.tail is not None:
            shown = shown[len(shown) - args.tail :] if args.tail else []
        for node, record in shown:
            printer(node, record)
        if not args.follow or info.get("ended") is not None:
            return 0
        follow_run(str(info["id"]), follower, printer, node=args.node)
    finally:
        follower.close()
    return 0


def rotated_records(path: Path) -> list[LogRecord]:
    """Records of the rotated files `<node>.log.N`, oldest (highest N) first."""
    numbered = []
    for old in path.parent.glob(path.name + ".*"):
        suffix = old.name[len(path.name) + 1 :]
        if re.fullmatch(r"\d+", suffix):
            numbered.append((int(suffix), old))
    records: list[LogRecord] = []
    for _, old in sorted(numbered, reverse=True):
        try:
            text = old.read_text(errors="replace")
        except OSError:
            continue
        records += [parse_line(line) for line in text.splitlines()]
    return records


def merge(older: dict[str, list[LogRecord]], current: list[Entry]) -> list[Entry]:
    """One time-ordered stream of every node's history; each node's own order is kept."""
    per_node: dict[str, list[LogRecord]] = {node: list(recs) for node, recs in older.items()}
    for node, record in current:
        per_node.setdefault(node, []).append(record)
    keyed: list[tuple[float, str, LogRecord]] = []
    for node, records in per_node.items():
        last = 0.0
        for record in records:
            last = record.time or last
            keyed.append((last, node, record))
    if len(per_node) > 1:
        keyed.sort(key=lambda item: item[0])
    return [(node, record) for _, node, record in keyed]
