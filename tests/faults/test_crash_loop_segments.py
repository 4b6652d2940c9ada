"""A node that crashes again and again while sending large payloads: each new generation
removes its node's shared-memory segments older than the last generation's, so /dev/shm
does not fill up over a long run (before, every crashed generation's stayed until the run
ended)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import flow_run_ok, write_dataflow

GENERATIONS = 8

CRASHER = """
import json, os
from node_sdk import Node
from node_sdk import shm

cfg = json.loads(os.environ["FLOW_NODE_CONFIG"])
node = Node()
for i in range(3):
    node.send_output("out", bytes([i]) * 100_000)  # through a segment of this generation
if cfg["generation"] < int(os.environ["LAST"]):
    os._exit(3)  # a crash: nothing unlinks this generation's segments
prefix = shm.run_prefix(cfg["run"]) + shm.sender_tag(cfg["node"], 1)[:-1]
held = sorted(n for n in os.listdir(shm.SHM_DIR) if n.startswith(prefix))
with open(os.environ["OUT"], "w") as out:
    json.dump({"generations": sorted({n[len(prefix):].partition("-")[0] for n in held})}, out)
"""

RECEIVER = """
from node_sdk import Node

with Node() as node:
    for event in node:
        pass
"""

YAML = """
nodes:
  - id: crasher
    path: crasher.py
    outputs: [out]
    restart_policy: on-failure
    restart_delay: 0
    max_restarts: 0
    env: {{LAST: '{last}', OUT: '{out}'}}
  - id: receiver
    path: receiver.py
    inputs:
      in: crasher/out
"""


def test_a_crash_looping_sender_keeps_at_most_two_generations_of_segments(
    flow_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "held.json"
    yml = write_dataflow(tmp_path, YAML.format(last=GENERATIONS, out=out),
                         {"crasher.py": CRASHER, "receiver.py": RECEIVER})  # fmt: skip
    flow_run_ok(flow_home, yml)
    held = json.loads(out.read_text())["generations"]
    # the last generation's own, and at most the one before it (a receiver may still be
    # about to map those); none of the six before
    assert held, "the last generation's own segments are there"
    assert set(held) <= {str(GENERATIONS - 1), str(GENERATIONS)}, held
