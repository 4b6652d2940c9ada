"""The start barrier spans machines (docs/cluster.md, "Placement"): no node on any machine
sends before every receiver everywhere is bound. A receiver on machine b binds its input
late (it sleeps before `Node()`); a sender on machine a sends at its first instant and on
every tick after; the receiver still gets the first value and every one after it.

Without the barrier the sender would be released at its own hello: by the time the
receiver binds, a burst of queued values meets its 10-deep `drop_oldest` queue and the
oldest, value 0 first, are dropped (checked by releasing each node at its hello)."""

from __future__ import annotations

from pathlib import Path

from helpers import wait_for
from netns import Machine, connected, run_info

BIND_LATE_S = 3.0  # the receiver's sleep before it binds (and says hello)

SENDER = """
from node_sdk import Node
node = Node()
sent = 0
node.send_output("value", str(sent))  # the first instant it may send
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        sent += 1
        node.send_output("value", str(sent))
    elif event["type"] == "STOP":
        break
"""

RECEIVER = f"""
import os, time
time.sleep({BIND_LATE_S})  # the input is bound (by Node()) this late
from node_sdk import Node
node = Node()
with open(os.environ["OUT"], "a") as out:
    for event in node:
        if event["type"] == "INPUT":
            out.write(event["value"] + "\\n")
            out.flush()
        elif event["type"] == "STOP":
            break
"""


def write_dataflow(folder: Path) -> Path:
    (folder / "sender.py").write_text(SENDER)
    (folder / "receiver.py").write_text(RECEIVER)
    path = folder / "late.yml"
    path.write_text(f"""
name: late
env:
  OUT: {folder / "received.txt"}
nodes:
  - id: sender
    path: sender.py
    deploy: {{machine: a}}
    inputs: {{tick: dora/timer/millis/10}}
    outputs: [value]
  - id: receiver
    path: receiver.py
    deploy: {{machine: b}}
    inputs: {{value: sender/value}}
""")
    return path


def received(folder: Path) -> list[int]:
    path = folder / "received.txt"
    return [int(v) for v in path.read_text().split()] if path.exists() else []


def test_no_node_sends_before_a_late_receiver_on_another_machine_is_bound(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a = cluster["a"]
    tmp_path.chmod(0o755)
    wait_for(lambda: connected(a, "b"), "b connected")
    started = a.flow("start", "--detach", str(write_dataflow(tmp_path)))
    assert started.returncode == 0, started.stdout + started.stderr
    run = started.stdout.strip().split()[-1]
    wait_for(lambda: len(received(tmp_path)) >= 100, "100 values on machine b")
    stopped = a.flow("stop", run)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    values = received(tmp_path)
    assert values[:3] == [0, 1, 2], f"the first values were lost: {values[:20]}"
    assert values == list(range(len(values))), f"a gap: {values}"
    nodes = {n["id"]: n for n in run_info(a, run)["nodes"]}
    assert {n["machine"] for n in nodes.values()} == {"a", "b"}
    assert nodes["receiver"]["generation"] == 1
