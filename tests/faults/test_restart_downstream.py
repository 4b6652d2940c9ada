"""A restart is invisible downstream but for the gap it really causes (item 4; P1-P3).

`source -> middle -> sink` while the stream goes on: the middle node (`restart_policy:
never`) is restarted by hand twice; or (`on-failure`) restarted by hand, made to exit 1,
and SIGKILLed. The sink never sees its input closed before the
source has ended, and no value twice; each generation of the middle node counts no false
drop; one process per node at any time; the middle node ends `succeeded`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import NODES, flow, wait_for, write_dataflow
from procs import GONE_S, node_processes, wait_gone

COUNT = 40


def graph(tmp_path: Path, policy: str, delay: float = 0.05) -> Path:
    yml = tmp_path / "chain.yml"
    yml.write_text(
        f"""
nodes:
  - id: source
    path: {NODES}/counter.py
    env:
      COUNT: {COUNT}
      SPAWN_FILE: {tmp_path / "source.spawns"}
      UNTIL_FILE: {tmp_path / "end"}
    inputs:
      tick: flow/timer/millis/30
    outputs: [count]
  - id: middle
    path: {NODES}/forward.py
    env: {{SPAWN_FILE: {tmp_path / "middle.spawns"}, CRASH_FILE: {tmp_path / "crash"}}}
    restart_policy: {policy}
    restart_delay: {delay}
    inputs:
      in: {{source: source/count, queue_size: 1000}}
    outputs: [out]
  - id: sink
    path: {NODES}/seqsink.py
    inputs:
      data: {{source: middle/out, queue_size: 1000}}
"""
    )
    return yml


def nodes_of(home: Path) -> dict[str, dict[str, Any]]:
    runs = [json.loads(x) for x in flow("list", "--all", "--json", home=home).stdout.splitlines()]
    return {n["id"]: n for n in runs[-1]["nodes"]}


class Sampler:
    """Live processes per node, sampled between the test's steps: never two per node."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seen: dict[str, set[int]] = {}

    def sample(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for node, live in node_processes(self.run_id).items():
                assert len(live) <= 1, f"{node} has {len(live)} live processes"
                self.seen.setdefault(node, set()).update(live)
            time.sleep(0.05)


@pytest.mark.parametrize("policy", ["never", "on-failure"])
def test_item4_restarting_a_middle_node_is_invisible_downstream(
    daemon: Path, tmp_path: Path, policy: str
) -> None:
    yml = graph(tmp_path, policy)
    assert flow("start", str(yml), "--detach", "--name", "chain", home=daemon).returncode == 0
    runs = [json.loads(x) for x in flow("list", "--json", home=daemon).stdout.splitlines()]
    sampler = Sampler(runs[-1]["id"])
    sampler.sample(0.8)
    for _ in range(2 if policy == "never" else 1):  # `flow node restart`
        done = flow("node", "restart", "chain", "middle", home=daemon)
        assert done.returncode == 0, done.stderr
        sampler.sample(0.6)
    generations = 3
    if policy == "on-failure":  # a crash by exit 1, then one by SIGKILL: both come back
        (tmp_path / "crash").touch()
        sampler.sample(0.6)
        assert not (tmp_path / "crash").exists()
        middle = nodes_of(daemon)["middle"]
        assert middle["generation"] == 3
        os.kill(middle["pid"], signal.SIGKILL)
        assert not wait_gone([middle["pid"]], GONE_S)
        sampler.sample(0.6)
        generations = 4
    # the stream ends once every step is done (at COUNT at least) and the middle's last
    # generation has bound its input, so the number of generations is the test's own (a
    # source ending between two generations is the test below)
    spawns_file = tmp_path / "middle.spawns"
    wait_for(lambda: len(spawns_file.read_text().splitlines()) == generations,
             f"the middle's generation {generations} never started")  # fmt: skip
    (tmp_path / "end").touch()
    deadline = time.monotonic() + 15
    while flow("list", home=daemon).stdout.count("chain"):
        assert time.monotonic() < deadline, "the run never ended"
        sampler.sample(0.2)
    nodes = nodes_of(daemon)
    assert {n: v["status"] for n, v in nodes.items()} == {
        "source": "succeeded",
        "middle": "succeeded",  # its real outcome, not `restarting`
        "sink": "succeeded",
    }
    assert nodes["middle"]["generation"] == generations
    assert nodes["sink"]["generation"] == 1
    assert len(sampler.seen["sink"]) == 1  # the sink was never restarted
    assert (tmp_path / "source.spawns").read_text().splitlines() == ["start"]
    spawns = (tmp_path / "middle.spawns").read_text().split("\n")
    assert [line.split()[1] for line in spawns if line] == [str(n) for n in range(generations)]
    sink_log = flow("logs", "chain", "sink", home=daemon).stdout
    values = [int(v) for v in re.findall(r"got data (\d+) seq", sink_log)]
    assert values == sorted(set(values)), "a value came twice or out of order"
    middle_log = flow("logs", "chain", "middle", home=daemon).stdout
    source_log = flow("logs", "chain", "source", home=daemon).stdout
    sent = re.findall(r"counter sent (\d+)", source_log)
    assert sent, source_log[-500:]
    assert int(sent[0]) >= COUNT, source_log[-500:]
    assert values[-1] == int(sent[0]), sink_log[-500:] + middle_log[-800:]
    # `sink | 12:00:01.234 text`: the text after the node and the time
    events = [line.split(" ", 3)[3] for line in sink_log.splitlines() if line.count(" ") >= 3]
    closed = [i for i, line in enumerate(events) if line.startswith(("closed", "stop"))]
    last_value = max(i for i, line in enumerate(events) if line.startswith("got data"))
    assert closed, sink_log[-500:]
    assert min(closed) > last_value, "the sink's input closed before the source ended"
    assert "gaps=0 repeats=0" in events[-1], events[-1]
    middle_log = flow("logs", "chain", "middle", home=daemon).stdout
    drops = re.findall(r"forward received=\d+ dropped=(\d+)", middle_log)
    # every generation that ended by itself or by a stop reports; a crashed one cannot
    assert drops == ["0"] * (3 if policy == "never" else 2), middle_log[-800:]


def test_a_sender_that_ends_while_its_receiver_restarts_delivers_its_tail(
    daemon: Path, tmp_path: Path
) -> None:
    """The middle node is SIGKILLed; its next generation is held back from binding its
    input until the source has ended.

    What the source sent after the kill is queued for the middle's next generation, and the
    source's end waits for it, as the daemon said the middle is restarting. Before, a
    sender that ended then took the broken connection for a receiver gone for good: it
    dropped its last values and end-of-stream, and the middle's next generation closed its
    input by the daemon's backstop, 2 s later, without them."""
    yml = graph(tmp_path, "on-failure")
    hold = tmp_path / "hold"
    yml.write_text(yml.read_text().replace("CRASH_FILE:", f"HOLD_FILE: {hold}, CRASH_FILE:"))
    assert flow("start", str(yml), "--detach", "--name", "tail", home=daemon).returncode == 0
    wait_for(lambda: "got data" in flow("logs", "tail", "sink", home=daemon).stdout,
             "the sink never got a value")  # fmt: skip
    middle = nodes_of(daemon)["middle"]
    os.kill(middle["pid"], signal.SIGKILL)
    assert not wait_gone([middle["pid"]], GONE_S)
    time.sleep(0.3)  # the source goes on sending: those values wait for the next generation
    (tmp_path / "end").touch()
    wait_for(lambda: "counter ended" in flow("logs", "tail", "source", home=daemon).stdout,
             "the source never ended its stream")  # fmt: skip
    hold.touch()  # within the source's send_timeout_s (10 s): it is still waiting
    wait_for(lambda: not flow("list", home=daemon).stdout.count("tail"), "the run never ended")
    nodes = nodes_of(daemon)
    assert {n: v["status"] for n, v in nodes.items()} == {
        "source": "succeeded", "middle": "succeeded", "sink": "succeeded"}  # fmt: skip
    assert nodes["middle"]["generation"] == 2
    source_log = flow("logs", "tail", "source", home=daemon).stdout
    sent = int(re.findall(r"counter sent (\d+)", source_log)[0])
    sink_log = flow("logs", "tail", "sink", home=daemon).stdout
    values = [int(v) for v in re.findall(r"got data (\d+) seq", sink_log)]
    middle_log = flow("logs", "tail", "middle", home=daemon).stdout
    assert values[-1] == sent, sink_log[-500:] + middle_log[-800:]
    assert "closed data" in sink_log, sink_log[-300:]


LINGERER = """
import time
from node_sdk import Node

with Node() as node:
    generation = node.restart_count()
    for event in node:
        print(f"gen {generation} {event['type']} {event['id']}", flush=True)
    if generation == 0:
        time.sleep(3600)  # past its loop, still running: restarted by hand from here
"""


def test_a_node_restarted_after_its_upstream_ended_sees_its_input_closed(
    daemon: Path, tmp_path: Path
) -> None:
    # before, the daemon told only the generation that was connected when the source ended:
    # the next one waited for the source's messages forever
    yml = write_dataflow(tmp_path, f"""
        nodes:
          - id: source
            path: {NODES}/counter.py
            env: {{COUNT: 3}}
            inputs:
              tick: flow/timer/millis/10
            outputs: [count]
          - id: lingerer
            path: lingerer.py
            inputs:
              in: source/count
        """, {"lingerer.py": LINGERER})  # fmt: skip
    assert flow("start", str(yml), "--detach", "--name", "late", home=daemon).returncode == 0
    wait_for(lambda: "gen 0 STOP" in flow("logs", "late", "lingerer", home=daemon).stdout,
             "the first generation's inputs never closed")  # fmt: skip
    done = flow("node", "restart", "late", "lingerer", home=daemon)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not flow("list", home=daemon).stdout.count("late"),
             "the restarted node never saw its input closed")  # fmt: skip
    log = flow("logs", "late", "lingerer", home=daemon).stdout
    assert "gen 1 INPUT_CLOSED in" in log, log
    assert "gen 1 STOP ALL_INPUTS_CLOSED" in log, log
    assert "gen 1 INPUT " not in log, log  # nothing of the ended source comes twice
    assert nodes_of(daemon)["lingerer"]["status"] == "succeeded"
