"""Python node scripts compiled, never run: their syntax errors found before anything is
spawned (`flow check`, `flow run`, `flow start`), as `script:LINE: ...` lines."""

from __future__ import annotations

import warnings
from pathlib import Path

from daemon.model.descriptor_model import Dataflow


def python_syntax_problems(dataflow: Dataflow) -> list[str]:
    """One line per Python node that does not compile: `script:LINE: ...`, as an editor
    or a terminal jumps to it."""
    problems = []
    compiled: dict[str, str | None] = {}  # a script many nodes run is compiled once
    for node in dataflow.nodes:
        if node.executable is None or not node.executable.endswith(".py"):
            continue
        if node.executable not in compiled:
            compiled[node.executable] = _compile_problem(Path(node.executable))
        problem = compiled[node.executable]
        if problem is not None:
            problems.append(f"{problem} (node {node.id!r})")
    return problems


def _compile_problem(script: Path) -> str | None:
    """Why `script` does not compile, or None; it is compiled, never run."""
    try:
        source = script.read_bytes()
    except OSError as exc:
        return f"{script}:1: cannot read: {exc.strerror or exc}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an invalid escape warns: not our concern here
            compile(source, str(script), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"{script}:{exc.lineno or 1}: syntax error: {exc.msg}"
    except ValueError as exc:  # null bytes, an undecodable source
        return f"{script}:1: cannot compile: {exc}"
    return None
