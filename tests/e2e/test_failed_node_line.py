"""A node that fails for good while the rest of the run goes on is said at once, in `flow
run` and an attached `flow start` (on a terminal), not only at the run's end: its
traceback alone looked like a hang."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pexpect
from helpers import BOUND_S, flow_env, write_dataflow

GRAPH = """\
nodes:
  - id: crasher
    path: crasher.py
  - id: sleeper
    path: sleeper.sh
"""
NODES = {
    "crasher.py": """\
        import sys, time
        from node_sdk import Node

        node = Node()
        time.sleep(0.3)
        raise SystemExit(3)
        """,
    "sleeper.sh": "#!/bin/sh\nexec sleep 60\n",
}
SAID = r"node crasher exited 3: the rest of the run goes on \(Ctrl-C stops it\)"


def _until_said_then_interrupted(argv: list[str], home: Path) -> tuple[str, int | None]:
    env = {**flow_env(home), "COLUMNS": "200"}
    child = pexpect.spawn(sys.executable, ["-m", "cli", *argv], env=env, timeout=BOUND_S,
                          encoding="utf-8")  # fmt: skip
    try:
        child.expect(SAID)
        child.sendintr()  # the run goes on until stopped
        child.expect(pexpect.EOF)
        child.close()
    finally:
        if child.isalive():
            child.terminate(force=True)
    return re.sub(r"\x1b\[[0-9;]*m", "", str(child.before)), child.exitstatus


def test_flow_run_says_a_failed_node_at_once(flow_home: Path, tmp_path: Path) -> None:
    yml = write_dataflow(tmp_path, GRAPH, NODES)
    after, status = _until_said_then_interrupted(["run", str(yml)], flow_home)
    assert status == 1, after  # the run failed: crasher failed
    assert "  crasher  exited 3" in after, after  # the end's account says it again


def test_an_attached_start_says_a_failed_node_at_once(daemon: Path, tmp_path: Path) -> None:
    yml = write_dataflow(tmp_path, GRAPH, NODES)
    after, status = _until_said_then_interrupted(["start", "--attach", str(yml)], daemon)
    assert status == 1, after
    assert "  crasher  exited 3" in after, after
