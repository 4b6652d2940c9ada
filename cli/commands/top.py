"""`flow top`: a live view of every run's nodes: CPU, memory, rates, drops."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

SAMPLE_S = 0.5  # CPU of the first (or only) table is measured over this long
HEADERS = (
    "RUN", "NODE", "STATUS", "PID", "CPU%", "RSS", "IN/S", "OUT/S", "QUEUED", "DROPPED",
    "P50", "P99",
)  # fmt: skip
MACHINE_AT = 2  # a run placed on several machines (docs/cluster.md) gets MACHINE after NODE
# on a terminal too narrow for every column, these go first, in this order (the rest fit
# in 80 columns with names of about 15 characters; longer names end in an ellipsis)
NARROW_DROPS = ("PID", "P99", "RSS", "QUEUED")
GAP = 2  # columns between two columns of the live table
NO_RUNS = "no live runs (start one with `flow start FILE`)"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "top",
        help="live CPU, memory, message rates and drops of every node",
        description="A live table of every node of every run the daemon supervises (a "
        "foreground `flow run` shows its nodes in its own terminal; an empty table names such "
        "runs): status, pid, CPU, memory, "
        "messages taken in per second (IN/S: handed to its code, all inputs) and sent per "
        "second (OUT/S, all outputs, each message once however many receivers it went to; "
        "`-` until the node has reported twice), queued and dropped messages (an output's "
        "drops once per edge that missed one), the latency from send to receive over the "
        "last second (P50, P99: the slowest input's; `-` when nothing came in). A node that "
        "is not running (ended, failed, stopped, waiting to restart, a dynamic one detached) "
        "shows `-` for its pid, rates, queue and latency: only its totals stay. With nodes on "
        "other machines (flow cluster), each node's MACHINE, its CPU and memory measured "
        "there. On a terminal it refreshes until `q` or Ctrl-C, and a narrow one shows fewer "
        "columns (PID, P99, RSS, QUEUED give way, in that order); piped, it prints one plain "
        "table and exits.",
        epilog="example: flow top --interval 2s",
    )
    p.add_argument("--once", action="store_true", help="print one JSON snapshot and exit")
    p.add_argument(
        "--interval", default="1s", metavar="DURATION",
        help="time between refreshes, more than 0 (1s, 500ms; default 1s)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from daemon.model.convert import unstructure
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_runs import Top

    interval = _interval(args.interval)
    if args.once:
        snapshot = client.call(Top(sample_s=Seconds(SAMPLE_S)), timeout=10.0)
        render.out.print(json.dumps(unstructure(snapshot)), markup=False, highlight=False)
        return 0
    first = unstructure(client.call(Top(sample_s=Seconds(SAMPLE_S)), timeout=10.0))
    if not render.out.is_terminal:  # piped: one plain table, then done
        if first["runs"]:
            render.table(headers(first), [(row, []) for row in rows(first)])
        else:
            render.info(empty_text())
        return 0
    return _watch(first, interval)


def _interval(text: str) -> float:
    """`--interval`: a duration above zero, or one `error:` line (exit 2)."""
    from cli.durations import DurationError, parse_duration
    from cli.errors import BAD_INPUT, CliError

    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise CliError(f"--interval: {exc}", BAD_INPUT) from None
    if not seconds > 0:
        raise CliError(f"--interval must be more than 0 (got {text!r}; try 1s)", BAD_INPUT)
    return seconds


def _watch(first: dict[str, Any], interval: float) -> int:
    """Refresh every `interval` until `q` or Ctrl-C; the terminal is restored either way."""
    from rich.live import Live

    from cli import client, render
    from cli.keys import QuitKeys
    from daemon.model.convert import unstructure
    from daemon.model.requests_runs import Top

    snapshot = first
    try:
        with QuitKeys() as keys, Live(console=render.out, auto_refresh=False) as live:
            while True:
                empty = None if snapshot["runs"] else empty_text()
                live.update(table(snapshot, empty=empty), refresh=True)
                if keys.wait(interval):
                    return 0
                snapshot = unstructure(client.call(Top()))
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how one leaves a live view: not a failure


def _placed(snapshot: dict[str, Any]) -> bool:
    return any(node.get("machine") for run in snapshot["runs"] for node in run["nodes"])


def headers(snapshot: dict[str, Any]) -> list[str]:
    """HEADERS, with MACHINE when a node runs on a named machine."""
    names = list(HEADERS)
    if _placed(snapshot):
        names.insert(MACHINE_AT, "MACHINE")
    return names


def rows(snapshot: dict[str, Any]) -> list[list[str]]:
    """One row of cells per node of every run, in `headers(snapshot)`'s order."""
    lines, placed = [], _placed(snapshot)
    for run in snapshot["runs"]:
        for node in run["nodes"]:
            rss = node.get("rss_bytes")
            machine = [node.get("machine") or "-"] if placed else []
            lines.append(
                [
                    run.get("name") or run["id"][:13],
                    node["id"],
                    *machine,
                    node["status"],
                    str(node.get("pid") or "-"),
                    "-" if node.get("cpu_percent") is None else f"{node['cpu_percent']:.1f}",
                    "-" if rss is None else f"{rss / (1 << 20):.1f}M",
                    _rate(node.get("in_rate")),
                    _rate(node.get("out_rate")),
                    "-" if node.get("queued") is None else str(node["queued"]),
                    str(node.get("dropped", 0)),
                    latency_text(node.get("latency_p50_us")),
                    latency_text(node.get("latency_p99_us")),
                ]
            )
    return lines


def latency_text(micros: int | None) -> str:
    """`850us`, `12.3ms`, `1.50s`; `-` when nothing came in over the interval."""
    if micros is None:
        return "-"
    if micros < 1000:
        return f"{micros}us"
    if micros < 1_000_000:
        return f"{micros / 1000:.1f}ms"
    return f"{micros / 1_000_000:.2f}s"


def _rate(value: float | None) -> str:
    """Messages per second, or `-` before the node's statistics gave one."""
    return "-" if value is None else f"{value:.1f}"


def empty_text() -> str:
    """What an empty table says: no run of the daemon's, and the `flow run`s in their own
    terminals, which it does not supervise (their nodes report to that process)."""
    from cli import client, run_ref
    from daemon.model.requests_runs import List

    foreground = run_ref.foreground(client.call(List()).runs)
    if not foreground:
        return NO_RUNS
    names = ", ".join(str(r["name"] or str(r["id"])[:13]) for r in foreground)
    return (f"no live runs of the daemon; {len(foreground)} foreground flow run(s) ({names}) "
            "show their nodes in their own terminals")  # fmt: skip


def table(snapshot: dict[str, Any], width: int | None = None, empty: str | None = None) -> Any:
    """The live view's table, fitted to `width` columns (the terminal's by default);
    `empty`: what a table without runs says."""
    from rich.table import Table

    from cli import render

    names, cells = headers(snapshot), rows(snapshot)
    keep = fitted(names, cells, render.out.width if width is None else width)
    view = Table(
        title=time.strftime("flow top  %H:%M:%S"),
        caption="q or Ctrl-C quits" if snapshot["runs"] else
        f"{empty or NO_RUNS}; q or Ctrl-C quits",
        box=None, padding=(0, GAP // 2), pad_edge=False, expand=True, header_style="bold",
    )  # fmt: skip
    for index in keep:
        header = names[index]
        left = header in ("RUN", "NODE", "MACHINE", "STATUS")
        view.add_column(
            header, justify="left" if left else "right", no_wrap=True,
            overflow="ellipsis", min_width=None if left else len(header),
        )  # fmt: skip
    for row in cells:
        view.add_row(*(row[index] for index in keep))
    return view


def fitted(names: list[str], cells: list[list[str]], width: int) -> list[int]:
    """The indexes of the columns to show in `width`: all, or without NARROW_DROPS's first
    ones until the rest fit."""
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(names)]
    keep = list(range(len(names)))
    for drop in NARROW_DROPS:
        if sum(widths[i] for i in keep) + GAP * (len(keep) - 1) <= width:
            break
        if drop in names:
            keep.remove(names.index(drop))
    return keep
