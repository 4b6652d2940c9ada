"""`flow doctor --cluster [DATAFLOW]`: the link matrix between machines (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from cli.durations import duration_arg

if TYPE_CHECKING:
    from cli.render import Cell
    from daemon.model.replies_cluster import LinkProbeReply, LinkRow

MIB = float(1 << 20)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster", nargs="?", const="", default=None, metavar="DATAFLOW",
        help="probe the links between machines instead (on the coordinator): those DATAFLOW's "
        "placed edges would use, both ways, or every pair of connected machines",
    )  # fmt: skip
    parser.add_argument("--timeout", type=duration_arg, default=None, metavar="DURATION",
                        help="with --cluster: how long each probe message may take to be "
                        "acknowledged (default 10s)")  # fmt: skip
    parser.add_argument("--large", type=_size, default=None, metavar="SIZE",
                        help="with --cluster: the large message's size (default 8MiB, at most "
                        "64MiB)")  # fmt: skip


def _size(text: str) -> int:
    from daemon.model.units import UnitError, parse_size

    try:
        return parse_size(text)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def refuse_options(args: argparse.Namespace) -> None:
    """`--timeout` and `--large` mean nothing to the checks of this machine."""
    from cli.errors import BAD_INPUT, CliError

    if args.timeout is not None or args.large is not None:
        raise CliError("--timeout and --large go with --cluster", BAD_INPUT)


def run(args: argparse.Namespace) -> int:
    from cli import client
    from cli.commands.start import read_dataflow
    from cli.link_probe import CALL_TIMEOUT_S, say_failed
    from daemon.model.cluster_probe import DEFAULT_TIMEOUT_S, LARGE_BYTES
    from daemon.model.requests_base import Seconds, YamlText
    from daemon.model.requests_cluster import ClusterProbe

    request = ClusterProbe(
        large=LARGE_BYTES if args.large is None else args.large,
        timeout=Seconds(DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout),
    )  # fmt: skip
    if args.cluster:
        path, text = read_dataflow(args.cluster)
        request = ClusterProbe(path=str(path), text=YamlText(text), large=request.large,
                               timeout=request.timeout)  # fmt: skip
    reply = client.call(request, timeout=CALL_TIMEOUT_S)
    if args.json:
        _print_json(reply)
    else:
        _print_matrix(reply, bool(args.cluster))
    return 1 if say_failed(reply) else 0


def _print_json(reply: LinkProbeReply) -> None:
    from cli import render
    from daemon.model.convert import unstructure

    for link in reply.links:
        line = {**unstructure(link), "status": _status(link),
                "small_bytes": reply.small_bytes, "large_bytes": reply.large_bytes}  # fmt: skip
        render.out.print(json.dumps(line), markup=False, highlight=False, soft_wrap=True)


def _status(link: LinkRow) -> str:
    return "local" if link.local else ("fail" if link.error else "ok")


def _print_matrix(reply: LinkProbeReply, planned: bool) -> None:
    from rich.text import Text

    from cli import render
    from daemon.model.units import format_size

    if not reply.links:
        render.info("no other machine is connected: no link to probe (flow cluster status)")
        return
    rows: list[tuple[list[Cell], list[Cell]]] = []
    for link in reply.links:
        cells: list[Cell] = [link.source, link.target, _verdict(link),
                             _time(link.small_s), _time(link.large_s), _rate(reply, link)]
        if planned:
            cells.append(str(len(link.edges)))
        notes: list[Cell] = [Text(link.error, style="red")] if link.error else []
        rows.append((cells, notes))
    headers = ["FROM", "TO", "LINK", f"{format_size(reply.small_bytes)}",
               f"{format_size(reply.large_bytes)}", "MIB/S"]  # fmt: skip
    render.table([*headers, "EDGES"] if planned else headers, rows)


def _verdict(link: LinkRow) -> Cell:
    from rich.text import Text

    if link.local:
        return Text("local (ipc://, not probed)", style="dim")
    return Text("FAIL", style="bold red") if link.error else Text("ok", style="green")


def _time(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _rate(reply: LinkProbeReply, link: LinkRow) -> str:
    if link.large_s is None or link.large_s <= 0:
        return "-"
    return f"{reply.large_bytes / MIB / link.large_s:.0f}"
