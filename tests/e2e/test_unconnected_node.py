"""A Python node that ends well without ever creating its Node() (forgotten) leaves its
run succeeded and its receivers with nothing: the run says so, in one degraded line; a
program that is not a node (`connects: false`, or not Python) is not named."""

from __future__ import annotations

from pathlib import Path

from helpers import flow, write_dataflow


def test_a_python_node_that_never_connected_is_named_at_the_runs_end(
    flow_home: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(
        tmp_path,
        """
        nodes:
          - id: forgot
            path: forgot.py
          - id: tool
            path: sh
            args: -c 'echo a tool'
          - id: script
            path: script.py
            connects: false
        """,
        {"forgot.py": "print('no Node here')\n", "script.py": "print('not a node')\n"},
    )
    done = flow("run", str(yml), home=flow_home, timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "succeeded" in said, said
    assert "degraded: node forgot: ended without connecting (a node connects when it " \
        "creates its Node()" in said, said  # fmt: skip
    assert "node tool:" not in said, said
    assert "node script:" not in said, said
