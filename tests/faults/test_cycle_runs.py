"""A cycle in the graph (fault matrix row 4): allowed, as in dora, and messages go round."""

from __future__ import annotations

from pathlib import Path

from helpers import flow, write_dataflow

PINGER = """
from node_sdk import Node

with Node() as node:
    started = False
    for event in node:
        if event["type"] != "INPUT":
            continue
        if event["id"] == "tick" and not started:
            started = True
            node.send_output("ping", "1")
        elif event["id"] == "pong":
            value = int(str(event["value"]))
            print(f"round {value}", flush=True)
            if value >= 20:
                break
            node.send_output("ping", str(value + 1))
"""

ECHO = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            node.send_output("pong", event["value"])
"""

GRAPH = """
nodes:
  - id: pinger
    path: pinger.py
    inputs:
      tick: flow/timer/millis/20
      pong: echo/pong
    outputs: [ping]
  - id: echo
    path: echo.py
    inputs:
      ping: pinger/ping
    outputs: [pong]
"""


def test_row4_a_cycle_runs_and_messages_go_round(tmp_path: Path, flow_home: Path) -> None:
    yml = write_dataflow(tmp_path, GRAPH, {"pinger.py": PINGER, "echo.py": ECHO})
    done = flow("run", str(yml), home=flow_home, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    rounds = [line for line in done.stdout.splitlines() if "round " in line]
    assert [int(line.rsplit(" ", 1)[1]) for line in rounds] == list(range(1, 21))
    assert "succeeded" in done.stdout
