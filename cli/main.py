"""`flow`'s entry point: argparse subcommands, one module per verb, one error path."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import cast

from daemon import __version__

__all__ = ["COMMANDS", "build_parser", "entry", "main"]

# each is cli/commands/<name>.py exposing register(sub) and run(args) -> int
COMMANDS = (
    "up",
    "down",
    "start",
    "stop",
    "restart",
    "list",
    "logs",
    "run",
    "check",
    "status",
    "build",
    "graph",
    "new",
    "node",
    "param",
    "topic",
    "top",
    "config",
    "completion",
    "doctor",
    "prune",
    "cluster",
    "record",
    "replay",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `only` one command's (importing the others' modules is
    most of what a short command like `flow run` would spend before its work)."""
    parser = argparse.ArgumentParser(
        prog="flow", description="Run dataflows: YAML graphs of processes wired over ZeroMQ."
    )
    parser.add_argument("--version", action="version", version=f"flow {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        module_name = f"cli.commands.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # not written yet: the other verbs still work
            raise
        module.register(sub)
    from cli.examples import attach

    attach(parser)  # after register(): the examples live in one table, not in each module
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `flow` with `argv` (default: sys.argv[1:]) and return its exit status."""
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `flow logs x | head`: the reader left; say nothing more
        _silence_stdout()
        return 0
    except Exception as exc:
        return _report(exc)


def entry() -> None:
    """The `flow` command: `main`, then exit without tearing the interpreter down.

    Freeing every module and object at exit costs a short command like `flow run` about a
    tenth of a second, for nothing: what must outlive the process is flushed here.
    """
    status = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # a reader that left, or a closed stream: nothing more can be said
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def _dispatch(argv: list[str] | None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    # the command is the first word that is not an option: flow's own options take no value
    command = next((word for word in args_in if not word.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        return _unknown_command(command)
    parser = build_parser(command if command in COMMANDS else None)
    try:
        args, extras = parser.parse_known_args(args_in)
    except SystemExit as exc:  # --help, --version, usage errors (argparse exits 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if extras:  # argparse's own words for it are its usage and `unrecognized arguments`
        from cli import render
        from cli.errors import BAD_INPUT
        from cli.spelling import unrecognized

        render.error(unrecognized(parser, args_in, extras))
        return BAD_INPUT
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return cast(Callable[[argparse.Namespace], int], func)(args)


def _unknown_command(command: str) -> int:
    from cli import render
    from cli.errors import BAD_INPUT
    from cli.spelling import unknown_command

    render.error(unknown_command(command, COMMANDS))
    return BAD_INPUT


def _report(exc: Exception) -> int:
    from cli import render
    from cli.errors import CliError

    if os.environ.get("FLOW_DEBUG") == "1":
        render.err.print_exception()
    if isinstance(exc, CliError):
        render.error(exc.message)
        for line in exc.details:
            render.err.print(line, markup=False)
        return exc.status
    render.error(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return 1


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    entry()
