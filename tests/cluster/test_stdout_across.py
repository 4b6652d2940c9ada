"""`send_stdout_as` across machines (docs/cluster.md, "Placement"): the keeper on the node's
machine sends its stdout lines over tcp:// with CURVE to a receiver on another machine."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import wait_for
from netns import Machine, connected

LINES = 150

TALKER = f"""
import time
from node_sdk import Node

with Node() as node:
    for i in range(1, {LINES + 1}):
        print(i, flush=True)
        time.sleep(0.01)
"""

SINK = """
import os
from node_sdk import Node

with Node() as node, open(os.environ["OUT"], "a") as out:
    for event in node:
        if event["type"] in ("INPUT", "INPUT_CLOSED"):
            out.write(f"{event['value'] if event['type'] == 'INPUT' else event['type']}\\n")
            out.flush()
"""


def _dataflow(folder: Path) -> Path:
    (folder / "talker.py").write_text(TALKER)
    (folder / "sink.py").write_text(SINK)
    path = folder / "stdout.yml"
    path.write_text(f"""
nodes:
  - id: talker
    path: talker.py
    deploy: {{machine: b}}
    outputs: [lines]
    send_stdout_as: lines
  - id: sink
    path: sink.py
    env: {{OUT: {folder / "dropping.txt"}}}
    inputs: {{said: {{source: talker/lines, queue_size: 1000}}}}
  - id: careful
    path: sink.py
    env: {{OUT: {folder / "careful.txt"}}}
    inputs:
      said: {{source: talker/lines, queue_policy: backpressure, queue_size: 1000}}
""")
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_stdout_lines_of_a_node_on_b_reach_every_receiver_on_a(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a = cluster["a"]
    tmp_path.chmod(0o755)  # the member's node reads its files too
    wait_for(lambda: connected(a, "b"), "b connected")
    started = a.flow("start", "--detach", str(_dataflow(tmp_path)))
    assert started.returncode == 0, started.stdout + started.stderr
    run = started.stdout.strip().split()[-1]
    listed = [json.loads(line) for line in a.flow("node", "list", run, "--json").stdout.split("\n")
              if line]  # fmt: skip
    assert {n["id"]: n["machine"] for n in listed} == {"talker": "b", "sink": "a", "careful": "a"}
    for name in ("dropping", "careful"):  # a drop_oldest and a backpressure receiver
        path = tmp_path / f"{name}.txt"
        wait_for(lambda path=path: "INPUT_CLOSED" in _lines(path), f"{name}: every line")
        lines = _lines(path)
        assert lines == [str(i) for i in range(1, LINES + 1)] + ["INPUT_CLOSED"], lines[:20]
