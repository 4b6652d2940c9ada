"""A node that gets SIGTERM from outside flow (fault matrix C5): its restart policy applies
in its own slot; the rest of the run is not relaunched."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from helpers import NODES, flow
from procs import GONE_S, node_processes, wait_gone

GRAPH = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    restart_policy: on-failure
    restart_delay: 0.05
    inputs:
      tick: flow/timer/millis/10
    outputs: [count]
  - id: sink
    path: {NODES}/seqsink.py
    inputs:
      data: {{source: counter/count, queue_size: 1000}}
"""


def _nodes(home: Path) -> dict[str, dict[str, Any]]:
    run = json.loads(flow("list", "--all", "--json", home=home).stdout.splitlines()[0])
    return {n["id"]: n for n in run["nodes"]}


def test_c5_sigterm_from_outside_restarts_that_node_only(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "c5.yml"
    yml.write_text(GRAPH)
    assert flow("start", str(yml), "--detach", "--name", "c5", home=daemon).returncode == 0
    run_id = json.loads(flow("list", "--json", home=daemon).stdout.splitlines()[0])["id"]
    before = _wait_running(daemon, generation=1, run_id=run_id)
    time.sleep(0.5)
    os.kill(before["counter"]["pid"], signal.SIGTERM)  # not flow's: someone else's kill
    assert not wait_gone([before["counter"]["pid"]], GONE_S)
    after = _wait_running(daemon, generation=2, run_id=run_id)
    assert after["counter"]["restarts"] == 1
    assert after["sink"]["pid"] == before["sink"]["pid"]  # the rest was not relaunched
    assert after["sink"]["generation"] == 1
    time.sleep(0.5)
    assert flow("stop", "c5", home=daemon).returncode == 0
    summary = flow("logs", "c5", "sink", home=daemon).stdout.splitlines()[-1]
    assert "repeats=0" in summary, summary  # each generation numbers from 1, none repeats


def _wait_running(home: Path, *, generation: int, run_id: str) -> dict[str, dict[str, Any]]:
    """The nodes once the counter's `generation` runs; never two counters alive meanwhile."""
    deadline = time.monotonic() + 10
    while True:
        nodes = _nodes(home)
        counter = nodes["counter"]
        running = counter["status"] == "running" and counter["pid"]
        if running and counter["generation"] == generation:
            return nodes
        assert all(len(p) <= 1 for p in node_processes(run_id).values())  # one per slot
        assert time.monotonic() < deadline, nodes
        time.sleep(0.05)
