"""Live receivers of a process node's `send_stdout_as` output: an observer (`flow topic
echo`) and a dynamic node attached while the node runs get the lines it prints next; the
daemon wires them to the keeper that sends those lines (`wire_stdout`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import NODES, flow, flow_env, write_dataflow

TALKER = """
nodes:
  - id: talker
    path: sh
    args: -c 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.05; done'
    outputs: [lines]
    send_stdout_as: lines
  - id: viewer
    path: dynamic
    inputs:
      data: talker/lines
    outputs: [seen]
"""


def test_echo_and_a_dynamic_node_hear_a_running_process_node(
    daemon: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, TALKER, {})
    started = flow("start", str(yml), "--detach", "--name", "talking", home=daemon)
    assert started.returncode == 0, started.stderr
    echo = flow("topic", "echo", "talking", "talker/lines", "--count", "3", home=daemon,
                timeout=30)  # fmt: skip
    assert echo.returncode == 0, echo.stdout + echo.stderr
    numbers = [int(n) for n in re.findall(r"'line (\d+)'", echo.stdout)]
    assert len(numbers) == 3, echo.stdout
    assert numbers == list(range(numbers[0], numbers[0] + 3)), echo.stdout
    viewer = subprocess.run(
        [sys.executable, str(NODES / "viewer.py")],
        env=flow_env(daemon, {"VIEWER_RUN": "talking", "WANT": "5"}),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert viewer.returncode == 0, viewer.stdout + viewer.stderr
    assert "viewer got 5" in viewer.stdout, viewer.stdout + viewer.stderr
    assert flow("stop", "talking", home=daemon).returncode == 0
