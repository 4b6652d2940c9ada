"""A NodeError nobody caught ends its node with one line naming the author's call, whether
the node was started by flow (forked or exec'd) or by hand; any other error keeps its
traceback, and FLOW_DEBUG=1 shows a NodeError's too."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import flow, flow_env, run_captured, write_dataflow

BAD_METADATA = """\
from node_sdk import Node

with Node() as node:
    node.send_output("out", b"x", {"when": object()})
"""


@pytest.mark.parametrize("start", ["forked", "exec"])
def test_a_node_error_in_a_run_is_one_line_naming_the_node_file(
    flow_home: Path, tmp_path: Path, start: str
) -> None:
    spawn = "    spawn: exec\n" if start == "exec" else ""  # a fresh interpreter
    yml = write_dataflow(tmp_path, f"name: uncaught\nnodes:\n  - id: bad\n    path: bad.py\n"
                         f"{spawn}    outputs: [out]\n", {"bad.py": BAD_METADATA})  # fmt: skip
    done = flow("run", str(yml), home=flow_home, timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    line = f"{tmp_path / 'bad.py'}:4: NodeError: metadata key 'when': value of type object"
    assert line in said, said
    assert "Traceback" not in said, said
    logged = flow("logs", "uncaught", "bad", home=flow_home).stdout
    assert line in logged, logged
    assert "Traceback" not in logged, logged


def test_a_node_started_by_hand_says_what_is_missing_in_one_line(
    flow_home: Path, tmp_path: Path
) -> None:
    script = tmp_path / "alone.py"
    script.write_text("from node_sdk import Node\n\nnode = Node()\n")
    env = flow_env(flow_home)
    env.pop("FLOW_NODE_CONFIG", None)
    done = run_captured([sys.executable, str(script)], env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{script}:3: NodeError: no FLOW_NODE_CONFIG in the environment: start this node "
        "with flow, or pass a node id to attach as a dynamic node"
    ], done.stderr
    debug = run_captured([sys.executable, str(script)], {**env, "FLOW_DEBUG": "1"})
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback"), debug.stderr
    assert "node_sdk/config.py" in debug.stderr, debug.stderr


def test_other_errors_keep_their_traceback(flow_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "oops.py"
    script.write_text("import node_sdk.node\n\n{}['missing']\n")
    done = run_captured([sys.executable, str(script)], flow_env(flow_home))
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback"), done.stderr
    assert "KeyError: 'missing'" in done.stderr
