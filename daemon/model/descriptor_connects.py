"""Whether a node connects to the node channel (an SDK node) or is a plain process node.

The start barrier waits for every node that connects; a process node (a shell pipeline, a
recorder binary, a C++ program) never will, so it must not hold the start. The YAML key
`connects` says it; without it, a node is a process node when nothing about it needs the
node SDK: no inputs, no output but its `send_stdout_as` one, and a program that is not
Python (docs/yaml-reference.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from daemon.model import descriptor_fields as f
from daemon.model.descriptor_model import Input
from daemon.model.yaml_lines import Path as Where

_PYTHON = re.compile(r"python[0-9.]*")


def node_connects(
    report: f.Report,
    raw: dict[str, Any],
    where: Where,
    program: tuple[str, str | None, Sequence[str]],
    inputs: tuple[Input, ...],
    outputs: tuple[str, ...],
    send_stdout_as: str | None,
) -> bool:
    """`connects` as written, or as inferred; a process node with inputs or outputs the
    SDK would serve is refused (nothing would ever read or send them).

    `program`: the node's `path` as written, its resolved executable, its arguments.
    """
    path, executable, args = program
    sdk_outputs = [o for o in outputs if o != send_stdout_as]
    inferred = path == "dynamic" or bool(inputs) or bool(sdk_outputs)
    inferred = inferred or is_python_program(path, executable, args)
    connects = f.get_bool(report, raw, "connects", where, default=inferred)
    if connects:
        return True
    at = (*where, "connects")
    if path == "dynamic":
        report.add(at, "a dynamic node always connects (it attaches through the node SDK)")
    if inputs:
        report.add(at, f"a node that does not connect cannot receive: it has inputs "
                       f"({', '.join(i.id for i in inputs)})")  # fmt: skip
    if sdk_outputs:
        report.add(at, f"a node that does not connect cannot send on {', '.join(sdk_outputs)} "
                       f"(only its send_stdout_as output is sent for it)")  # fmt: skip
    return False


def is_python_program(path: str, executable: str | None, args: Sequence[str]) -> bool:
    """A `.py` file, a Python interpreter (or a script whose `#!` names one), or a command
    given a `.py` file (`uv run node.py`): taken to be an SDK node."""
    if path.endswith(".py") or any(arg.endswith(".py") for arg in args):
        return True
    names = [os.path.basename(path)]
    if executable is not None:
        names.append(os.path.basename(executable))
        names.extend(_shebang_words(executable))
    return any(_PYTHON.fullmatch(name) for name in names)


def _shebang_words(executable: str) -> list[str]:
    """The basenames of the words of a script's `#!` line (none for a binary)."""
    try:
        with open(executable, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace")
    return [os.path.basename(word) for word in line.split()]
