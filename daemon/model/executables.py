"""Where a node's `path` points (a file next to the YAML, a command on PATH) and if it can run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from daemon.model.descriptor_fields import Report
from daemon.model.yaml_lines import Path as Where


def resolve(report: Report, folder: Path, path: str, where: Where, check_paths: bool) -> str | None:
    """The absolute executable of a node's `path`, or None (dynamic, or a problem reported)."""
    if path == "dynamic":
        return None
    expanded = os.path.expanduser(path)
    candidate = folder / expanded
    # A bare name that is not a file next to the YAML is a command on PATH (as dora does).
    if "/" not in path and not path.endswith(".py") and not candidate.exists():
        found = shutil.which(path)
        if found is None and not check_paths:
            return None
        if found is None:
            report.add(where, f"'{path}' is not a file next to the dataflow nor on PATH")
            return None
        return os.path.abspath(found)
    resolved = Path(os.path.abspath(candidate))
    if not check_paths:
        return str(resolved)
    if not resolved.exists():
        report.add(where, f"no such file: {resolved}")
    elif not resolved.is_file():
        report.add(where, f"not a file: {resolved}")
    elif not path.endswith(".py") and not os.access(resolved, os.X_OK):
        report.add(where, f"not executable: {resolved} (chmod +x it)")
    elif not path.endswith(".py") and (why := shebang_problem(resolved)):
        report.add(where, f"{resolved}: {why}")
    else:
        return str(resolved)
    return None


def shebang_problem(script: str | os.PathLike[str]) -> str | None:
    """Why the `#!` interpreter of an executable script cannot run it, or None.

    The kernel reports a missing interpreter as ENOENT on the script itself, at spawn,
    after other nodes may have started; checking it here keeps a bad file from starting.
    """
    try:
        with open(script, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return None  # the caller reports unreadable files
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        return "its #! line names no interpreter"
    interpreter = words[0]
    if not os.path.isfile(interpreter) or not os.access(interpreter, os.X_OK):
        return f"its #! interpreter {interpreter} does not exist or is not executable"
    if os.path.basename(interpreter) == "env":
        command = next((w for w in words[1:] if not w.startswith("-")), None)
        if command is not None and shutil.which(command) is None:
            return f"its #! line runs '{command}', which is not on PATH"
    return None
