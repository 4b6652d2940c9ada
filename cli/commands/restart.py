"""`flow restart [RUN]`: a new run of a run's file as it is now (the old run stopped first)."""

from __future__ import annotations

import argparse
from typing import Any

from cli.durations import duration_arg
from cli.run_ref import add_run_argument

DEFAULT_GRACE = 10.0
# what the daemon may take: reading the file, the old run's stop, the new run's spawns
START_BUDGET_S = 60.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restart",
        help="start a new run of a run's dataflow file (re-read), stopping the run first",
        description="Read RUN's dataflow file again and validate it; if it is valid, stop "
        "RUN (when active) and start a new run of it with the same name and --env. An invalid "
        "file refuses the restart and leaves RUN as it is. --stored uses the copy of the file "
        "stored when RUN started instead.",
    )
    add_run_argument(p)
    p.add_argument(
        "--stored",
        action="store_true",
        help="start the copy stored at RUN's start, not the file as it is now",
    )
    p.add_argument(
        "--record", metavar="PATH", default=None,
        help="record the new run's outputs into a new MCAP file (docs/recording.md); a "
        "recording of RUN ends with it",
    )  # fmt: skip
    p.add_argument(
        "--grace",
        type=duration_arg,
        default=None,
        metavar="D",
        help="how long RUN's nodes get after STOP before SIGTERM (default 10s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.commands.config import load_settings
    from cli.recording import new_file
    from cli.run_ref import target_run
    from cli.waiting import Background, lost_machine_wait, wait_stopped
    from daemon.model.requests_base import Seconds, YamlText
    from daemon.model.requests_runs import Restart, Wait

    record = None if args.record is None else new_file(args.record)  # before anything stops
    old = client.call(Wait(run=target_run(args.run), timeout=Seconds(0.0))).run
    label = render.run_label(old)
    text = None if args.stored else YamlText(validated(str(old["path"])))
    source = f"the copy stored at its start (of {old['path']})" if args.stored else old["path"]
    active = old.get("status") in ("starting", "running")
    grace = DEFAULT_GRACE if args.grace is None else args.grace
    seconds = None if args.grace is None else Seconds(args.grace)
    request = Restart(run=str(old["id"]), text=text, grace=seconds, record=record)
    budget = grace * 1.5 + START_BUDGET_S + lost_machine_wait([old], load_settings)
    restarting = Background(lambda: client.call(request, timeout=budget).run)
    if active:
        render.info(f"restarting {label}: stopping it, then starting {source}")
        # the daemon validates the file before it stops anything: an invalid one ends here
        wait_stopped([old], grace, budget, until=lambda: restarting.done)
    else:
        render.info(f"restarting {label} (it had {old.get('status')}): starting {source}")
    info = restarting.result()
    if active:  # how the old run's nodes ended, as `flow stop` says it
        render.run_result(client.call(Wait(run=str(old["id"]), timeout=Seconds(0.0))).run)
    # runs started within a minute share their first 8 characters: tell the two apart
    shorts = render.short_ids([str(old["id"]), str(info["id"])])
    recording = "" if record is None else f", recording into {record}"
    render.info(
        f"started run {render.run_label(info, shorts[str(info['id'])])} from {info['path']} "
        f"(replacing {shorts[str(old['id'])]}{recording})"
    )
    return 0


def validated(file: str) -> str:
    """The file's text once it parses as a dataflow: checked here before anything is said
    or stopped (the daemon checks it again, before it stops the old run)."""
    from pathlib import Path

    from cli.commands.start import read_dataflow
    from cli.errors import CliError, DaemonError
    from daemon.model.descriptor import parse_dataflow
    from daemon.model.errors import DataflowInvalid

    try:
        path, text = read_dataflow(file)
    except CliError as exc:  # moved or deleted since: the stored copy is still there
        raise CliError(f"{exc.message} (--stored starts the copy stored at the run's start)",
                       exc.status) from None  # fmt: skip
    try:
        parse_dataflow(Path(path), text)
    except DataflowInvalid as exc:  # the same lines `flow start` prints for it
        raise DaemonError("DataflowInvalid", "\n".join(exc.problems)) from None
    return text
