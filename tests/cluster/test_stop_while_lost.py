"""`flow stop` of a run while one of its machines is cut off (docs/cluster.md, "Loss and
return"): the stop waits for that machine's nodes until the grace is over, they end `lost`,
the command returns within a bound, and once the link is back nothing of the run is left
running on either machine."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import BOUND_S, run_captured, wait_for
from netns import GRACE_S, LOST_AFTER_S, PORT, Machine, connected, run_info

SOURCE = """
from node_sdk import Node
node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        sent += 1
        node.send_output("counter", str(sent))
    elif event["type"] == "STOP":
        break
"""

SINK = """
import os
from node_sdk import Node
node = Node()
with open(os.environ["OUT"], "a") as out:
    for event in node:
        if event["type"] == "INPUT":
            out.write(f"{event['value']}\\n")
            out.flush()
        elif event["type"] == "STOP":
            break
"""


def write_dataflow(folder: Path) -> Path:
    (folder / "source.py").write_text(SOURCE)
    (folder / "sink.py").write_text(SINK)
    path = folder / "cut.yml"
    path.write_text(f"""
name: cut
env:
  OUT: {folder / "received.txt"}
nodes:
  - id: source
    path: source.py
    deploy: {{machine: b}}
    inputs: {{tick: dora/timer/millis/20}}
    outputs: [counter]
  - id: sink
    path: sink.py
    deploy: {{machine: a}}
    inputs: {{counter: source/counter}}
""")
    return path


def received(folder: Path) -> int:
    path = folder / "received.txt"
    return len(path.read_text().split()) if path.exists() else 0


def node_states(a: Machine, run: str) -> dict[str, str]:
    return {n["id"]: n["status"] for n in run_info(a, run)["nodes"]}


def restart_with_long_grace(member: Machine) -> None:
    """The member's daemon again, with a grace far longer than the coordinator's: its own
    timer then stops nothing within a test's bounds."""
    down = member.flow("down")
    assert down.returncode == 0, down.stderr
    env = {**member.env(), "FLOW_CLUSTER_GRACE": "60s"}
    up = run_captured(member.argv([sys.executable, "-m", "cli", "up"]), env)
    assert up.returncode == 0, up.stdout + up.stderr


@pytest.mark.parametrize("stop_at", ["lost", "cut", "lost, member's grace longer"])
def test_stop_while_a_machine_is_cut_off_waits_out_the_grace_and_leaves_nothing(
    cluster: dict[str, Machine], tmp_path: Path, stop_at: str
) -> None:
    """`lost`: the stop comes once the coordinator shows the machine lost; `cut`: at once,
    before it knows (its STOP goes into a dead link). With the member's grace longer, its
    nodes still run when it is back: the coordinator, whose run has ended, stops them."""
    a, b = cluster["a"], cluster["b"]
    tmp_path.chmod(0o755)
    if "longer" in stop_at:
        restart_with_long_grace(b)
    wait_for(lambda: connected(a, "b"), "b connected")
    before = {"a": set(a.pids()), "b": set(b.pids())}
    started = a.flow("start", "--detach", str(write_dataflow(tmp_path)))
    assert started.returncode == 0, started.stdout + started.stderr
    run = started.stdout.strip().split()[-1]
    wait_for(lambda: received(tmp_path) >= 20, "20 values across machines")
    b.link(False)
    cut = time.monotonic()
    if stop_at.startswith("lost"):
        wait_for(lambda: node_states(a, run)["source"] == "lost", "source lost")
    asked = time.monotonic()
    stopped = a.flow("stop", run)
    returned = time.monotonic()
    print(f"\nflow stop returned {returned - asked:.2f} s after it was asked, "
          f"{returned - cut:.2f} s after the cut (grace {GRACE_S} s)")  # fmt: skip
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    # the bound: loss noticed (lost_after + a heartbeat), the grace, and the stop's round
    assert returned - cut < LOST_AFTER_S + GRACE_S + BOUND_S
    assert returned - cut > GRACE_S, "the stop did not wait for the cut-off machine's nodes"
    info = run_info(a, run)
    assert info["status"] not in ("starting", "running"), info
    nodes = {n["id"]: n for n in info["nodes"]}
    assert nodes["source"]["status"] == "lost", nodes
    assert nodes["source"]["generation"] == 1
    assert nodes["sink"]["status"] == "stopped", nodes
    if "longer" in stop_at:  # still running there: what stops them is the coordinator
        assert set(b.pids()) - before["b"], "b stopped its nodes by itself"
    b.link(True)
    wait_for(lambda: connected(a, "b"), "b connected again")
    # nothing of the run left on either machine: only what ran before its start
    wait_for(lambda: set(b.pids()) <= before["b"], "machine b's node and keeper gone")
    wait_for(lambda: set(a.pids()) <= before["a"], "machine a's node and keeper gone")
    assert node_states(a, run)["source"] == "lost", "the machine's return changed an ended run"


LONG_GRACE_S = 12.0  # longer than `flow stop --force` waited for an answer before (10 s)


def test_a_forced_stop_waits_for_a_lost_machine_longer_than_its_own_budget(
    hosts: dict[str, Machine], tmp_path: Path
) -> None:
    """With a `cluster_grace` longer than the stop's own budget (grace * 1.5 + 10 s), the
    command still waits for the lost machine's nodes and shows the result."""
    a, b = hosts["a"], hosts["b"]
    env = {**a.env(), "FLOW_CLUSTER_GRACE": f"{LONG_GRACE_S}s"}  # a's daemon and CLI both

    def on_a(*args: str) -> subprocess.CompletedProcess[str]:
        return run_captured(a.argv([sys.executable, "-m", "cli", *args]), env, timeout=60.0)

    up = on_a("up", "--machine", "a", "--listen", f"tcp://{a.address}:{PORT}")
    assert up.returncode == 0, up.stdout + up.stderr
    joined = b.flow("up", "--machine", "b", "--join", on_a("cluster", "token").stdout.strip())
    assert joined.returncode == 0, joined.stdout + joined.stderr
    tmp_path.chmod(0o755)
    wait_for(lambda: connected(a, "b"), "b connected")
    started = on_a("start", "--detach", str(write_dataflow(tmp_path)))
    assert started.returncode == 0, started.stdout + started.stderr
    run = started.stdout.strip().split()[-1]
    wait_for(lambda: received(tmp_path) >= 20, "20 values across machines")
    b.link(False)
    wait_for(lambda: node_states(a, run)["source"] == "lost", "source lost")
    asked = time.monotonic()
    stopped = on_a("stop", "--force", run)
    print(f"\nflow stop --force returned {time.monotonic() - asked:.2f} s after it was asked "
          f"(cluster_grace {LONG_GRACE_S} s)")  # fmt: skip
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert re.search(r"source\s+lost with its machine", stopped.stdout), stopped.stdout
    assert node_states(a, run)["source"] == "lost"
    b.link(True)
