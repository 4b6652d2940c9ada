"""`flow run FILE`: run a dataflow in the foreground, no daemon needed; exit with its result."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.errors import BAD_INPUT, CliError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run a dataflow in the foreground until it ends",
        description="Run a dataflow in this process, no daemon needed, streaming its nodes' "
        "logs; exit with its result.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the dataflow YAML file")
    parser.add_argument(
        "--stop-after", metavar="D", default=None, help="stop the run after D (e.g. 10s, 2m)"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="add to every node's env"
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, metavar="S", help="seconds of grace on stop"
    )
    parser.set_defaults(func=run)


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--env {pair!r}: expected K=V", BAD_INPUT)
        env[key] = value
    return env


def run(args: argparse.Namespace) -> int:
    from cli import render
    from cli.commands.config import load_settings
    from cli.durations import parse_duration
    from daemon.errors import DataflowInvalid, FatalError
    from daemon.foreground import run_foreground_sync
    from daemon.model.descriptor import MAX_YAML_BYTES, parse_dataflow
    from daemon.model.logformat import LogRecord

    load_settings()  # read once, before anything runs: a bad setting is bad input
    path: Path = args.file.resolve()
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise CliError(f"{path}: larger than {MAX_YAML_BYTES} bytes", BAD_INPUT)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}", BAD_INPUT) from exc
    env = parse_env(args.env)
    stop_after = parse_duration(args.stop_after) if args.stop_after else None
    try:
        dataflow = parse_dataflow(path, text)
    except DataflowInvalid as exc:
        for problem in exc.problems:
            render.err.print(problem, markup=False, highlight=False)
        return BAD_INPUT
    width = max((len(n.id) for n in dataflow.nodes), default=0)

    def tee(node: str, record: LogRecord) -> None:
        if record.stream == "log":
            line = f"{record.level} {record.logger or node}: {record.message}"
        else:
            line = record.message
        render.out.print(render.prefixed(node, line, width))

    try:
        info = run_foreground_sync(
            path, text, env, stop_after=stop_after, tee=tee, grace=args.grace
        )
    except FatalError as exc:  # a home or socket folder not ours: one line, nothing ran
        raise CliError(str(exc)) from None
    status = render.run_result(info)
    if info["status"] == "stopped" and stop_after is not None:
        return 0
    return status
