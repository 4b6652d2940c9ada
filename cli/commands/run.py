"""`flow run FILE`: run a dataflow in the foreground, no daemon needed; exit with its result."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from cli.durations import duration_arg
from cli.errors import BAD_INPUT, CliError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run a dataflow in the foreground until it ends",
        description="Run a dataflow in this process, no daemon needed, streaming its nodes' "
        "logs; exit with its result.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the dataflow YAML file")
    add_run_options(parser)
    parser.add_argument(
        "--record", metavar="PATH", default=None,
        help="record every output into a new MCAP file (docs/recording.md)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a run in the foreground (`flow run`, `flow replay`)."""
    parser.add_argument(
        "--name", default=None,
        help="a name for the run (default: the YAML's `name:`): printable, not the start of a "
        "run id",
    )  # fmt: skip
    parser.add_argument(
        "--stop-after",
        metavar="D",
        type=duration_arg,
        default=None,
        help="stop the run after D (e.g. 10s, 2m)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="add to every node's env"
    )
    parser.add_argument(
        "--grace",
        type=duration_arg,
        default=10.0,
        metavar="D",
        help="how long nodes get after STOP before SIGTERM (e.g. 2s; default 10s)",
    )


# a run stopped by a signal exits as a shell reports a process that signal ended
# (Ctrl-C 130, SIGTERM 143, a reader that left 141, a terminal that closed 129), unless
# the run failed: then 1
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGPIPE: 141, signal.SIGHUP: 129}


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--env {pair!r}: expected K=V", BAD_INPUT)
        env[key] = value
    return env


def run(args: argparse.Namespace) -> int:
    from cli.commands.start import read_dataflow
    from cli.recording import new_file

    path: Path = args.file.resolve()
    record = None if args.record is None else new_file(args.record)
    _, text = read_dataflow(str(args.file))  # the missing-file message of every command
    return foreground(path, text, args, record=record)


def foreground(path: Path, text: str, args: argparse.Namespace, record: str | None = None) -> int:
    """Run `text` (the dataflow of `path`, whose folder its relative paths are in) in this
    process until it ends, with `args`' name, env, stop-after and grace; its exit status.
    `flow replay` runs its rewritten dataflow through here too."""
    from cli import render
    from cli.bulk_lines import BulkLines
    from cli.commands.config import load_settings
    from cli.endings import failed_line
    from cli.errors import dataflow_invalid, run_name
    from cli.recording import report
    from cli.tee import StdoutTee
    from daemon.foreground import run_foreground_sync
    from daemon.model.descriptor import parse_dataflow
    from daemon.model.errors import DataflowInvalid, FatalError, RecoverableError
    from daemon.model.logformat import LogRecord
    from daemon.model.python_scripts import python_syntax_problems

    run_name(args.name)
    settings = load_settings()  # read once, before anything runs: a bad setting is bad input
    env = parse_env(args.env)
    stop_after: float | None = args.stop_after
    try:
        dataflow = parse_dataflow(path, text)
    except DataflowInvalid as exc:
        raise dataflow_invalid(exc.problems) from None
    problems = python_syntax_problems(dataflow)  # as `flow check`: before anything runs
    if problems:
        raise dataflow_invalid(problems)
    width = max((len(n.id) for n in dataflow.nodes), default=0)
    # the keeper thread only hands each record over, stamped when it was read: rendering
    # and writing are the writer thread's, a batch at a time
    stdout = StdoutTee(BulkLines(render.out, width).write)
    signals: list[signal.Signals] = []

    def tee(node: str, entry: LogRecord) -> None:
        stdout.put((node, entry))

    def on_signal(sig: signal.Signals, first: bool) -> None:
        signals.append(sig)
        if sig is signal.SIGHUP:
            render.silence_terminal()  # it is gone: a write to it fails (EIO), none is seen
        if sig in (signal.SIGPIPE, signal.SIGHUP):
            return  # nobody reads stdout any more; stderr may still be seen
        if first:
            said = f"{sig.name}: stopping the run (grace {args.grace:g}s); again to kill"
        else:
            said = f"{sig.name} again: killing the run's nodes"
        with contextlib.suppress(BrokenPipeError):  # stderr's reader may have left too
            render.warning(said)

    def late_hangup(signum: int, frame: object) -> None:
        """A hangup outside the run's own signal handling (trio's, which puts this one back
        as it ends): after the first one stopped the run, a second (the shell's to its
        jobs) must not cut the exit short; any other goes as if never caught."""
        if signal.SIGHUP in signals:
            return
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGHUP)

    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup it stays ignored
        signal.signal(signal.SIGHUP, late_hangup)

    def say_failed(node: dict[str, Any]) -> None:
        with contextlib.suppress(BrokenPipeError):
            render.warning(failed_line(node))

    timeouts = {n.id: n.connect_timeout or settings.start_timeout for n in dataflow.nodes}
    progress = Progress(args.name or dataflow.name or "the run", args.grace, timeouts,
                        {n.id for n in dataflow.nodes if not n.connects})  # fmt: skip
    # the daemon's own log lines (`node x ignored SIGTERM: SIGKILL`) would reach stderr raw
    # through logging's last resort: the progress lines and the account below say it all
    logging.getLogger("daemon").addHandler(logging.NullHandler())
    try:
        with progress:
            info = run_foreground_sync(
                path,
                text,
                env,
                stop_after=stop_after,
                tee=tee,
                grace=args.grace,
                on_signal=on_signal,
                name=args.name,
                on_progress=progress.report,
                record=record,
                on_failed=say_failed,
            )
    # a home or socket folder not ours, a start refused (too few descriptors): one line,
    # nothing ran
    except (FatalError, RecoverableError) as exc:
        stdout.close()
        raise CliError(str(exc)) from None
    try:
        if not stdout.close():
            render.warning("stdout is not being read: the last lines were not shown")
        if stdout.dropped:
            render.warning(f"{stdout.dropped} lines not shown: stdout was too slow (see flow logs)")
        status = render.run_result(info)
        if record is not None:
            report(record)
    except BrokenPipeError:  # the reader left after the last node line
        status = 1 if info["status"] == "failed" else 0
        signals.append(signal.SIGPIPE)
    if status == 0 and signals:
        return SIGNAL_EXIT[signals[0]]
    if info["status"] == "stopped" and stop_after is not None:
        return 0
    return status


class Progress:
    """What `flow run` is waiting for, as plain lines on stderr: the nodes the start barrier
    waits for (after a moment), the nodes a stop waits for."""

    QUIET_S = 1.0  # a start that takes less than this says nothing

    def __init__(
        self, label: str, grace: float, timeouts: dict[str, float], processes: set[str]
    ) -> None:
        from cli.waiting import StatusLine

        self.label = label
        self.grace = grace
        self.timeouts = timeouts  # how long each node has to connect
        self.processes = processes  # the process nodes: SIGTERM at once, no STOP
        self.line = StatusLine(live=False)

    def __enter__(self) -> Progress:
        self.line.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.line.__exit__()

    def report(self, phase: str, waiting: list[str], elapsed: float) -> None:
        from cli.waiting import starting_text, stopping_text

        if phase == "start":
            if elapsed >= self.QUIET_S:
                self.line.update(*starting_text(self.label, waiting, self.timeouts, elapsed))
        else:
            with contextlib.suppress(BrokenPipeError):
                self.line.update(
                    *stopping_text(self.label, waiting, self.grace, elapsed, self.processes)
                )
