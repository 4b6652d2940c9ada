"""`flow list`: the daemon's runs as a table, or JSON lines with `--json`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "list",
        help="list runs (active ones unless --all)",
        description="List the daemon's runs as a table (or JSON lines): name, id, status, "
        "node counts and age; failures and degradations under each run. With no daemon "
        "running, the runs as the state store last recorded them (`flow run`s included).",
    )
    p.add_argument("--all", action="store_true", help="include ended runs")
    p.add_argument("--json", action="store_true", help="one RunInfo JSON object per line")
    p.add_argument(
        "--limit",
        metavar="N",
        type=_positive,
        default=None,
        help="only the N newest runs (flow prune deletes old ones)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.errors import DaemonNoReply, DaemonUnreachable
    from daemon.model.requests_runs import List
    from daemon.model.run_rows import LIST_REPLY_BYTES

    try:
        reply = client.call(List(all=args.all))
    except DaemonNoReply:  # it runs: the store would show its runs as they are not
        raise
    except DaemonUnreachable:  # `flow run`s may be running: the store is there to read
        runs = _from_the_store(client.home_path(), args.all)
    else:
        runs = reply.runs
        if reply.omitted and (args.limit is None or args.limit > len(runs)):
            render.err.print(f"{reply.omitted} older run(s) left out: a list is bounded to "
                             f"{LIST_REPLY_BYTES >> 20} MiB (flow prune deletes old runs)",
                             style="dim")  # fmt: skip
    if args.limit is not None:
        runs = runs[-args.limit :]  # oldest first: the newest N are the last N
    if args.json:
        import sys

        for info in runs:
            sys.stdout.write(json.dumps(info) + "\n")
        return 0
    print_table(runs, include_ended=args.all)
    return 0


def _from_the_store(home: Path, include_ended: bool) -> list[dict[str, Any]]:
    """The runs as the state store last recorded them, said to be so (on stderr, so that
    `--json` stays JSON): a daemon run still marked active is settled by the next `flow up`.
    """
    from cli import offline_runs, render

    runs = offline_runs.runs(home, include_ended=include_ended)
    waiting = [r for r in runs if r["status"] == "interrupted" or (
        r["status"] in offline_runs.ACTIVE and not offline_runs.being_run(r))]  # fmt: skip
    note = "the flow daemon is not running: runs as the state store last recorded them"
    if waiting:  # settled (left marked running) or brought back (interrupted) by the daemon
        note += f"; {len(waiting)} daemon run(s) wait for the next flow up"
    render.err.print(note, style="dim")
    return runs


def _positive(text: str) -> int:
    """argparse `type=` for `--limit`: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _status(info: dict[str, Any]) -> Any:
    """The run's status, with `(recovered)` after a daemon restart brought it back."""
    from cli import render

    text = render.status_text(str(info.get("status")))
    if info.get("recovered"):
        text.append(" (recovered)", style="cyan")
    return text


def print_table(runs: list[dict[str, Any]], *, include_ended: bool) -> None:
    from rich.text import Text

    from cli import render
    from cli.durations import human_age

    if not runs:
        said = "no runs" if include_ended else "no runs running (flow list --all shows ended ones)"
        render.err.print(said, style="dim")
        return
    now = time.time()
    shorts = render.short_ids([str(info.get("id", "")) for info in runs])
    # runs placed on several machines (docs/cluster.md) get a MACHINES column
    placed = any(n.get("machine") for info in runs for n in info.get("nodes") or [])
    rows = []
    for info in runs:
        cells: list[render.Cell] = [
            str(info.get("name") or "-"),
            shorts[str(info.get("id", ""))],
            _status(info),
            render.node_counts(info.get("nodes") or []),
            *([_machines(info)] if placed else []),
            human_age(now - float(info.get("created") or now)),
        ]
        notes: list[render.Cell] = []
        for node in info.get("nodes") or []:
            failure = render.node_failure(node, render.stop_forced(info))
            if failure:
                notes.append(Text(failure, style="red"))
        if info.get("error"):
            notes.append(Text(f"error: {info['error']}", style="red"))
        if info.get("degraded"):
            notes.append(Text(f"degraded: {info['degraded']}", style="yellow"))
        rows.append((cells, notes))
    machines = ["MACHINES"] if placed else []
    render.table(["NAME", "ID", "STATUS", "NODES", *machines, "AGE"], rows)


def _machines(info: dict[str, Any]) -> str:
    """`a: 2, b: 1`: how many of the run's nodes each machine runs."""
    counts: dict[str, int] = {}
    for node in info.get("nodes") or []:
        machine = str(node.get("machine") or "-")
        counts[machine] = counts.get(machine, 0) + 1
    return ", ".join(f"{m}: {n}" for m, n in sorted(counts.items()))
