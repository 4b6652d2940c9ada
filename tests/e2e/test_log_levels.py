"""`flow logs --level ERROR` finds what a user looks for when a node crashed: the
traceback of its uncaught exception (stderr lines count as WARNING, a traceback's as
ERROR), and nothing else of its stderr."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import flow, write_dataflow

CRASHER = """\
import sys

print("a warning of its own", file=sys.stderr, flush=True)
print("chatter")
raise RuntimeError("simulated crash")
"""

GRAPH = """\
nodes:
  - id: crasher
    path: crasher.py
    connects: false
"""


def test_level_error_shows_an_uncaught_exceptions_traceback(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, GRAPH, {"crasher.py": CRASHER})
    ran = flow("run", str(yml), "--name", "crash", home=flow_home)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    errors = flow("logs", "crash", "--level", "ERROR", home=flow_home)
    assert errors.returncode == 0, errors.stderr
    shown = errors.stdout.splitlines()
    assert "Traceback (most recent call last):" in shown[0], shown
    assert shown[-1].endswith("stderr: RuntimeError: simulated crash"), shown
    assert "a warning of its own" not in errors.stdout
    assert "chatter" not in errors.stdout
    warnings = flow("logs", "crash", "--level", "WARNING", home=flow_home).stdout
    assert "a warning of its own" in warnings
    as_json = [json.loads(line) for line in
               flow("logs", "crash", "--json", home=flow_home).stdout.splitlines()]  # fmt: skip
    levels = {r["message"]: r["level"] for r in as_json}
    assert levels["RuntimeError: simulated crash"] == "ERROR"
    assert levels["a warning of its own"] is None
