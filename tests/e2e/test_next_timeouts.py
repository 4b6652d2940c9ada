"""`next(timeout=...)` takes any number of seconds (infinity, years) and refuses what is no
duration in one NodeError; dora's `send_output` refuses metadata that is not a dict the
same way (each raised from deep in the SDK: OverflowError, TypeError, AttributeError)."""

from __future__ import annotations

from pathlib import Path

from helpers import flow_run_ok

SCRIPT = """
from dora import Node as DoraNode
from node_sdk import Node, NodeError

node = Node()
for timeout in (float("inf"), 1e12, 40 * 86400, 10**400, 1e306, -1):
    event = node.next(timeout=timeout)
    print("waited", str(timeout)[:14], event["type"] if event is not None else None)
for bad in ("1", float("nan"), True):
    try:
        node.next(timeout=bad)
    except NodeError as exc:
        print("refused:", exc)
"""

DORA_SCRIPT = """
from dora import Node

node = Node()
try:
    node.send_output("out", b"x", [1, 2])
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
"""

GRAPH = """
nodes:
  - id: waiter
    path: waiter.py
    inputs:
      tick: flow/timer/millis/50
  - id: dora-sender
    path: dora_sender.py
    outputs: [out]
"""


def test_timeouts_of_any_size_and_what_is_no_timeout(flow_home: Path, tmp_path: Path) -> None:
    (tmp_path / "waiter.py").write_text(SCRIPT)
    (tmp_path / "dora_sender.py").write_text(DORA_SCRIPT)
    (tmp_path / "g.yml").write_text(GRAPH)
    out = flow_run_ok(flow_home, tmp_path / "g.yml")
    assert "Traceback" not in out, out
    for waited in ("inf INPUT", "1000000000000. INPUT", "3456000 INPUT", "10000000000000 INPUT",
                   "1e+306 INPUT"):  # fmt: skip
        assert f"waited {waited}" in out, out
    assert "waited -1 " in out  # nothing waits: an event that is there, or None
    for bad in ("str '1'", "float nan", "bool True"):
        assert f"refused: next(timeout=...): expected seconds (a number) or None, got {bad}" in (
            out), out  # fmt: skip
    assert "refused: NodeError metadata must be a dict, got list" in out, out
