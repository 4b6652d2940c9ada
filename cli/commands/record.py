"""`flow record RUN -o PATH`: record a live run's outputs into MCAP until Ctrl-C or its end."""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any

from cli.run_ref import add_run_argument

RENEW_S = 1.0


def register(sub: Any) -> None:
    from cli.durations import duration_arg

    p = sub.add_parser(
        "record",
        help="record a running dataflow's outputs into an MCAP file",
        description="Record the messages of a live run's outputs from now on into a new MCAP "
        "file (docs/recording.md), until Ctrl-C, --duration or the run's end; then say how "
        "many were recorded and how many were not.",
    )
    add_run_argument(p)
    p.add_argument("-o", "--output", metavar="PATH", required=True,
                   help="the MCAP file to write (it must not exist)")  # fmt: skip
    p.add_argument("--topics", metavar="NODE/OUTPUT,...", default=None,
                   help="record only these outputs (default: every output)")  # fmt: skip
    p.add_argument("--duration", type=duration_arg, default=0.0, metavar="D",
                   help="stop after D (e.g. 30s; default: Ctrl-C or the run's end)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.errors import BAD_INPUT, CliError
    from cli.recording import new_file
    from cli.run_ref import target_run
    from daemon.model.requests_watch import RecordRenew, RecordStart, RecordStop

    path = new_file(args.output, "-o")
    topics = [t.strip() for t in (args.topics or "").split(",") if t.strip()]
    if args.topics is not None and not topics:  # [] asks the daemon for every output
        raise CliError(f"--topics {args.topics!r}: no NODE/OUTPUT in it (leave --topics out "
                       "to record every output)", BAD_INPUT)  # fmt: skip
    reply = client.call(RecordStart(run=target_run(args.run), path=path, topics=topics),
                        timeout=60.0)  # fmt: skip
    outputs = "1 output" if len(reply.topics) == 1 else f"{len(reply.topics)} outputs"
    render.err.print(f"recording {outputs} to {path}; Ctrl-C stops", style="dim", markup=False)
    stops: list[int] = []
    previous = {s: signal.signal(s, lambda n, _: stops.append(n))
                for s in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    try:
        ends = time.monotonic() + args.duration if args.duration > 0 else None
        while reply.summary is None and not stops:
            if ends is not None and time.monotonic() >= ends:
                break
            time.sleep(min(RENEW_S, max(0.0, ends - time.monotonic())) if ends else RENEW_S)
            if not stops:
                reply = client.call(RecordRenew(recording=reply.recording))
        if reply.summary is None:
            reply = client.call(RecordStop(recording=reply.recording), timeout=60.0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return report(path, reply.summary or {})


def report(path: str, summary: dict[str, Any]) -> int:
    """What was recorded, per output, and what was not (never silent); 1 if the file failed."""
    from cli import render
    from cli.recording import summary_lines

    recorded, missed = summary.get("recorded") or 0, summary.get("missed") or 0
    render.info(f"recorded {recorded} messages to {path}")
    for line in summary_lines(summary):
        render.info(line)
    if missed:
        render.warning(f"{missed} messages were not recorded")
    if summary.get("error"):
        render.error(f"recording: {summary['error']}")
        return 1
    return 0
