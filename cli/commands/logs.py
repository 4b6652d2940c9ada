"""`flow logs [RUN] [NODE]`: show a run's node logs; `-f` follows them until the run ends."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.durations import since_arg
from cli.run_ref import add_run_argument
from daemon.model.logformat import LEVEL_NUMBERS, LogRecord, merge_times, parse_line

if TYPE_CHECKING:
    from cli.follow import Entry, LinePrinter, LogFollower


def register(sub: Any) -> None:
    p = sub.add_parser(
        "logs",
        help="show a run's node logs",
        description="Print a run's node logs, merged by time, as `node | time LEVEL text`; "
        "filter them, or follow them until the run ends and print its result. Reads the "
        "log files under FLOW_HOME, so it works without a daemon. Example: "
        "flow logs demo camera --level WARNING --since 10m",
    )
    add_run_argument(p)
    p.add_argument(
        "node", nargs="?", metavar="NODE", help="only this node (alone: of the only active run)"
    )
    p.add_argument(
        "-f", "--follow", action="store_true", help="follow until the run ends; print its result"
    )
    p.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    p.add_argument(
        "--since",
        type=since_arg,
        default=None,
        metavar="D",
        help="only lines newer than a duration ago (10m) or a time (ISO)",
    )
    p.add_argument(
        "--grep",
        default=None,
        metavar="S",
        help="only lines containing S (as shown: node, time, level, text)",
    )
    p.add_argument(
        "--level",
        type=level_arg,
        default=None,
        metavar="L",
        help="only records of level L or above (DEBUG, INFO, WARNING, ERROR, CRITICAL); "
        "a stdout line counts as INFO, a stderr line as WARNING, a Python traceback's "
        "lines on stderr as ERROR",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per record: time, node, level, stream, logger, message",
    )
    p.set_defaults(func=run)


def level_arg(text: str) -> int:
    """`warning` or `WARNING` -> 30 (argparse type)."""
    number = LEVEL_NUMBERS.get(text.upper())
    if number is None:
        raise argparse.ArgumentTypeError(
            f"unknown level {text!r} (DEBUG, INFO, WARNING, ERROR or CRITICAL)"
        )
    return number


def run(args: argparse.Namespace) -> int:
    from cli import client
    from cli.errors import BAD_INPUT, CliError, DaemonUnreachable
    from cli.follow import LinePrinter, LogFollower
    from daemon.model.requests_runs import Logs

    if args.tail is not None and args.tail < 0:
        raise CliError("--tail must be 0 or more", BAD_INPUT)
    home = client.home_path()
    try:
        run_ref, node = which_run_and_node(args.run, args.node)
        reply = client.call(Logs(run=run_ref, node=node, follow=args.follow))
        info, files, online = reply.run, reply.files, True
    except DaemonUnreachable:  # the logs are local files: read them without the daemon
        from cli import offline_runs

        if args.run is None:
            raise CliError(
                "the daemon is not running: name the run (its id, prefix or name)"
            ) from None
        info = offline_runs.resolve(home, args.run)
        files, online = offline_runs.log_files(home, info, args.node), False
    printer = LinePrinter(
        files, grep=args.grep, since=args.since, level=args.level, as_json=args.json
    )
    follower = LogFollower(files)
    try:
        history = merge(
            {node: rotated_records(Path(path)) for node, path in files.items()},
            follower.poll(final=not args.follow),
        )
        shown = printer.shown(history)
        if args.tail is not None:
            shown = shown[len(shown) - args.tail :] if args.tail else []
        printer.write_shown(shown)
        if not args.follow:
            return 0
        if info.get("ended") is None:
            info = follow(str(info["id"]), follower, printer, args.node, online=online)
    finally:
        follower.close()
    return show_result(info, as_json=args.json)


def which_run_and_node(run: str | None, node: str | None) -> tuple[str, str | None]:
    """The run and node `flow logs [RUN] [NODE]` means: no RUN is the only active run, and a
    lone word that names no run but a node of the only active run is that node."""
    from cli import client
    from cli.run_ref import target_run
    from daemon.model.requests_runs import List

    if run is None:
        return target_run(None), node
    if node is not None:
        return run, node
    active = client.call(List()).runs
    if len(active) == 1:
        only = active[0]
        names_the_run = run == only.get("name") or str(only["id"]).startswith(run)
        if not names_the_run and run in {n["id"] for n in only.get("nodes", [])}:
            return str(only["id"]), run
    return run, None


def follow(
    run_id: str, follower: LogFollower, printer: LinePrinter, node: str | None, *, online: bool
) -> dict[str, Any]:
    """Print the run's new records until it ends; its final info."""
    from cli.follow import follow_run

    if online:
        return follow_run(run_id, follower, printer, node=node)
    from cli import client, offline_runs, render  # no daemon: a `flow run` may be writing

    home = client.home_path()
    while True:
        printer(follower.poll())
        info = offline_runs.resolve(home, run_id)
        if info.get("ended") is not None or not offline_runs.being_run(info):
            printer(follower.poll(final=True))
            if info["status"] in offline_runs.ACTIVE:
                render.warning(
                    f"run {render.run_label(info)} is recorded as {info['status']} but no "
                    "daemon runs it: flow up recovers it"
                )
            return info
        time.sleep(0.2)


def show_result(info: dict[str, Any], *, as_json: bool) -> int:
    """How the followed run ended (a JSON object with `--json`); 1 when it failed."""
    from rich.text import Text

    from cli import render
    from cli.endings import node_ending

    if not as_json:
        return render.run_result(info)
    result = {key: info.get(key) for key in ("id", "name", "status", "error", "degraded")}
    nodes = info.get("nodes") or []
    failed = [node for node in nodes if node.get("status") in ("failed", "killed")]
    forced = render.stop_forced(info)
    result["failed_nodes"] = {str(n.get("id")): node_ending(n, forced) for n in failed}
    render.out.print(Text(json.dumps({"run": result}, ensure_ascii=False)))
    return 1 if info.get("status") == "failed" else 0


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
        keyed += zip(merge_times(records), itertools.repeat(node), records, strict=False)
    if len(per_node) > 1:
        keyed.sort(key=lambda item: item[0])
    return [(node, record) for _, node, record in keyed]
