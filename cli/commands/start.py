"""`flow start FILE`: start a run on the daemon; attached, stream its logs until it ends."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "start",
        help="start a dataflow on the daemon",
        description="Send a dataflow file to the daemon, which validates and starts it. "
        "Attached, stream its nodes' logs until it ends and exit with its result.",
    )
    p.add_argument("file", metavar="FILE", help="the dataflow YAML file")
    p.add_argument(
        "--name", default=None,
        help="a name for the run: printable, not the start of a run id",
    )  # fmt: skip
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--attach",
        dest="attach",
        action="store_true",
        default=None,
        help="stream the logs until the run ends (default on a terminal)",
    )
    mode.add_argument(
        "--detach", dest="attach", action="store_false", help="print the run id and return at once"
    )
    p.add_argument(
        "--env",
        action="append",
        type=env_pair,
        default=[],
        metavar="K=V",
        help="add an environment variable for every node (repeatable)",
    )
    p.add_argument(
        "--probe",
        action="store_true",
        help="on a cluster's coordinator, first probe the links between machines the "
        "dataflow would use (as flow doctor --cluster FILE) and start nothing if one fails",
    )
    p.add_argument(
        "--record", metavar="PATH", default=None,
        help="record every output into a new MCAP file (docs/recording.md)",
    )  # fmt: skip
    p.set_defaults(func=run)


def env_pair(text: str) -> tuple[str, str]:
    """argparse `type=` for `--env K=V`."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected K=V, got {text!r}")
    return key, value


def read_dataflow(file: str) -> tuple[Path, str]:
    """The file's absolute path and text; a missing, huge or undecodable file is bad input."""
    from cli.errors import BAD_INPUT, CliError, path_text
    from daemon.model.descriptor import MAX_YAML_BYTES

    path_text(file)
    path = Path(file).expanduser().absolute()
    try:
        if not path.exists():
            raise CliError(f"no such dataflow file: {file}", BAD_INPUT)
        if path.is_dir():  # the folder `flow new NAME` made, most likely
            found = sorted(p.name for p in path.glob("*.y*ml") if p.suffix in (".yml", ".yaml"))
            hint = f"; did you mean {Path(file) / found[0]}?" if found else ""
            raise CliError(f"{file} is a folder{hint}", BAD_INPUT)
        if not path.is_file():  # a FIFO, a device
            raise CliError(f"{file}: not a regular file", BAD_INPUT)
        if path.suffix == ".py":  # a node's script given for its dataflow
            raise CliError(f"{file} is a Python script: give the dataflow's YAML file, whose "
                           "nodes name their scripts in `path:`", BAD_INPUT)  # fmt: skip
        if path.stat().st_size > MAX_YAML_BYTES:
            raise CliError(f"{file} is larger than 1 MiB", BAD_INPUT)
        return path, path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{file} is not UTF-8 text", BAD_INPUT) from None
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}", BAD_INPUT) from None


def run(args: argparse.Namespace) -> int:
    from cli import client, render
    from cli.errors import run_name
    from cli.follow import Interrupts
    from cli.recording import new_file, report
    from daemon.model.requests_base import Env, Name, YamlText
    from daemon.model.requests_runs import Start

    name = run_name(args.name)
    path, text = read_dataflow(args.file)
    if args.probe:
        from cli.link_probe import probe_before_start

        if not probe_before_start(path, text):
            return 1
    record = None if args.record is None else new_file(args.record)
    request = Start(path=str(path), text=YamlText(text), env=Env(dict(args.env)), record=record,
                    name=None if name is None else Name(name))  # fmt: skip
    attach = sys.stdin.isatty() if args.attach is None else args.attach
    if not attach:
        started = client.call(request, timeout=60.0).run
        render.info(f"{started['id']} {started['name']}" if started.get("name")
                    else str(started["id"]))  # fmt: skip
        return 0
    # from before the request goes out: a Ctrl-C (or SIGTERM) at any moment after it stops
    # the run it starts, never leaves it running unseen (SIGTERM counts as a Ctrl-C)
    with Interrupts(signals=(signal.SIGINT, signal.SIGTERM)) as interrupts:
        info = start_held(request, interrupts)
        if info is None:
            return INTERRUPTED
        if interrupts.count >= interrupts.limit:
            return kill_and_leave(str(info["id"]))
        status = attached(str(info["id"]), interrupts)
    if record is not None:
        report(record)
    return status


INTERRUPTED = 130  # docs/cli-reference.md: interrupted (Ctrl-C)


def start_held(request: Any, interrupts: Any) -> dict[str, Any] | None:
    """Send the `Start` request with every press held (counted, never raised) until its
    reply names the run: the follow loop then turns them into its stop, as if they came
    after. None, and nothing sent, when a press came before the request could go."""
    from cli import client, render

    if interrupts.count:
        render.warning("interrupted before the start was asked: nothing was started")
        return None
    interrupts.on_held = _held
    try:
        info: dict[str, Any] = client.call(request, timeout=60.0, sent=_sent_hook()).run
    finally:
        interrupts.on_held = None
    render.err.print(
        f"started run {render.run_label(info)}; Ctrl-C stops it", style="dim", markup=False
    )
    return info


def _held(sig: signal.Signals, press: int) -> None:
    """A press while the daemon starts the run: what will be done once it has."""
    from cli import render

    what = ("stop the run", "kill the run", "kill the run and detach")[min(press, 3) - 1]
    name = "Ctrl-C" if sig is signal.SIGINT else sig.name
    render.warning(f"{name}: will {what} as soon as the daemon has started it")


def kill_and_leave(run_id: str) -> int:
    """Three presses before the run was known: kill it (grace 0), then detach, as the third
    press does later (docs/cli-reference.md)."""
    from cli import client, render
    from daemon.model.requests_base import Seconds
    from daemon.model.requests_runs import Stop

    render.warning("killing the run (Ctrl-C three times) and detaching")
    client.call(Stop(run=run_id, grace=Seconds(0.0), force=True), timeout=60.0)
    return INTERRUPTED


def _sent_hook() -> Any:
    """FLOW_TEST_HOOKS=start-sent: say when the start request has gone out, so a test can
    interrupt while the daemon holds it (tests/e2e/test_start_interrupt.py)."""
    import os

    if "start-sent" not in os.environ.get("FLOW_TEST_HOOKS", "").split(","):
        return None
    from cli import render

    return lambda: render.err.print("test hook: start request sent", markup=False)


def attached(run_id: str, interrupts: Any, home: Path | None = None) -> int:
    """Follow every node's log until the run ends; print the result; its exit status.
    `interrupts` (entered by the caller) turns Ctrl-C into a stop, then a kill."""
    from cli import client, render
    from cli.follow import LinePrinter, LogFollower, follow_run
    from daemon.model.requests_runs import Logs

    files = client.call(Logs(run=run_id, follow=True), home=home).files
    follower = LogFollower(files)
    printer = LinePrinter(files)
    wait_connected(run_id, interrupts, home)
    final = follow_run(run_id, follower, printer, home=home, interrupts=interrupts)
    return render.run_result(final)


QUIET_S = 1.0  # a start barrier shorter than this says nothing


def wait_connected(run_id: str, interrupts: Any, home: Path | None) -> None:
    """While the run's start barrier waits, say for which nodes (they log nothing yet: the
    log lines follow from their beginning afterwards). A Ctrl-C ends this wait untouched:
    the log follower that comes next turns it into a stop."""
    import time

    from cli import client, render
    from cli.waiting import StatusLine, starting_text
    from daemon.model.requests_runs import List

    began = time.monotonic()
    with StatusLine() as line:
        while interrupts.count == 0:
            runs = client.call(List(), home=home).runs
            info = next((r for r in runs if r["id"] == run_id), None)
            if info is None or info.get("status") != "starting":
                return
            waiting = [str(n["id"]) for n in info["nodes"] if n.get("status") == "starting"]
            elapsed = time.monotonic() - began
            if waiting and elapsed >= QUIET_S:
                line.update(*starting_text(render.run_label(info), waiting, None, elapsed))
            time.sleep(0.25)
