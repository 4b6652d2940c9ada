"""`flow build FILE`: run every node's `build:` shell lines in the dataflow's folder."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "build",
        help="run the build lines of a dataflow's nodes",
        description="Run each node's `build:` lines with the shell, in the YAML file's folder, "
        "with flow's own Python first on PATH (and its virtualenv as VIRTUAL_ENV): `pip "
        "install x` installs where flow's Python nodes import from.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the dataflow YAML file")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the output of every build command"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.text import Text

    from cli.commands.start import read_dataflow
    from cli.errors import dataflow_invalid
    from cli.render import error, out
    from daemon.model.descriptor import parse_dataflow
    from daemon.model.errors import DataflowInvalid

    _, text = read_dataflow(str(args.file))
    try:
        # check_paths=False: the build lines may be what makes the nodes' files
        dataflow = parse_dataflow(Path(args.file), text, check_paths=False)
    except DataflowInvalid as exc:
        raise dataflow_invalid(exc.problems) from None

    built = 0
    for node in dataflow.nodes:
        if not node.build:
            continue
        for line in node.build:
            done = _run_line(node.id, line, Path(dataflow.folder), out.is_terminal)
            if args.verbose or done.returncode != 0:
                _show_output(done.stdout)
            if done.returncode != 0:
                error(f"build of node {node.id!r} failed: {line!r} exited {done.returncode}")
                return 1
        built += 1
        out.print(Text.assemble(("✓ " if out.is_terminal else "", "green"), f"built {node.id}"))
    out.print(f"built {built} node{'' if built == 1 else 's'}", markup=False)
    return 0


def build_env() -> dict[str, str]:
    """The environment of build lines: flow's own interpreter first on PATH (and its venv
    as VIRTUAL_ENV), so `pip install x` installs where flow's Python nodes will import it."""
    import os
    import sys

    env = dict(os.environ)
    # the folder of sys.executable as it was called, not resolved: a venv's bin/python is
    # a link to the base interpreter, and the venv is what must come first
    interpreter_dir = os.path.dirname(sys.executable)
    rest = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p != interpreter_dir]
    env["PATH"] = os.pathsep.join([interpreter_dir, *rest])
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def _run_line(
    node_id: str, line: str, folder: Path, terminal: bool
) -> subprocess.CompletedProcess[str]:
    """Run one build line (output captured, stderr merged), with a spinner on a terminal."""
    from rich.text import Text

    from cli.render import out

    def call() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            line,
            shell=True,
            cwd=folder,
            env=build_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )

    if not terminal:
        out.print(Text(f"building {node_id}: {line}"))
        return call()
    with out.status(Text(f"building {node_id}: {line}")):
        return call()


def _show_output(output: str) -> None:
    from rich.text import Text

    from cli.render import err

    for output_line in output.rstrip("\n").splitlines():
        err.print(Text(f"  {output_line}", style="dim"))
