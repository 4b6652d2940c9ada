"""A running graph's edits survive a daemon crash: recovery makes them again.

`flow node add`, `connect`, `disconnect` and `remove` change a run live; the daemon is then
killed with SIGKILL. The new daemon either adopts the run (its keeper waited) or starts its
nodes again (the keeper's grace ran out): either way the graph it supervises is the edited
one: the added node is there and can be removed, the moved input feeds where it was moved
to, the removed node stays out, and the run stops cleanly with nothing left running.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from helpers import BOUND_S, NODES, daemon_down, flow, wait_for
from procs import daemon_pid, node_processes, wait_gone

GRAPH = f"""
nodes:
  - id: src
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/50
    outputs: [count]
  - id: a
    path: {NODES}/listener.py
    inputs:
      x: src/count
  - id: b
    path: {NODES}/listener.py
    inputs:
      x: src/count
"""


def nodes(home: Path, run: str) -> dict[str, dict[str, Any]]:
    listed = flow("node", "list", run, "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    return {n["id"]: n for n in map(json.loads, listed.stdout.splitlines())}


def log_of(home: Path, run: str, node: str) -> str:
    return flow("logs", run, node, home=home).stdout


@pytest.mark.parametrize("grace", ["60s", "2s"], ids=["adopted", "started-again"])
def test_graph_edits_survive_a_daemon_crash(flow_home: Path, tmp_path: Path, grace: str) -> None:
    try:
        edit_then_crash(flow_home, tmp_path, {"FLOW_DAEMON_GRACE": grace})
    finally:
        daemon_down(flow_home)


def edit_then_crash(home: Path, tmp_path: Path, env: dict[str, str]) -> None:
    assert flow("up", home=home, env_extra=env).returncode == 0
    yml = tmp_path / "g.yml"
    yml.write_text(GRAPH)
    assert flow("start", str(yml), "--detach", "--name", "g", home=home).returncode == 0
    snippet = tmp_path / "extra.yml"
    snippet.write_text(f"id: extra\npath: {NODES}/listener.py\ninputs:\n  y: src/count\n")
    for edit in (("add", "g", str(snippet)), ("connect", "g", "src/count", "a/y"),
                 ("disconnect", "g", "src/count", "a/x"), ("remove", "g", "b")):  # fmt: skip
        done = flow("node", *edit, home=home)
        assert done.returncode == 0, f"{edit}: {done.stderr}"
    wait_for(lambda: "input y" in log_of(home, "g", "extra"), "extra never heard src")
    before = nodes(home, "g")
    run_id = before["src"]["run"]
    killed = daemon_pid(home)
    os.kill(killed, signal.SIGKILL)
    assert not wait_gone([killed], 10), "the daemon outlived SIGKILL"
    adopted = env["FLOW_DAEMON_GRACE"] == "60s"
    if not adopted:  # the keeper stops the nodes once its grace is over
        assert not wait_gone([n["pid"] for n in before.values()], BOUND_S)
    assert flow("up", home=home, env_extra=env).returncode == 0
    after = nodes(home, "g")
    assert set(after) == {"src", "a", "extra"}  # b stays removed
    assert after["a"]["inputs"] == {"y": "src/count"}  # moved from x to y
    assert after["extra"]["inputs"] == {"y": "src/count"}
    if adopted:  # the same processes, wired as they were
        assert {n: after[n]["pid"] for n in after} == {n: before[n]["pid"] for n in after}
    else:  # started again from the edited graph, and fed
        heard = len(log_of(home, "g", "extra").split("input y"))
        wait_for(lambda: len(log_of(home, "g", "extra").split("input y")) > heard + 3,
                 "the restarted extra is not fed")  # fmt: skip
    # the sender started again sends where the adopted (or restarted) receivers listen:
    # the recovered model gave the moved input the endpoint it had
    assert flow("node", "restart", "g", "src", home=home).returncode == 0
    heard = log_of(home, "g", "a").count("input y")
    wait_for(lambda: log_of(home, "g", "a").count("input y") > heard + 3,
             "a hears nothing on y from the restarted src")  # fmt: skip
    removed = flow("node", "remove", "g", "extra", home=home)
    assert removed.returncode == 0, removed.stderr
    stopped = flow("stop", "g", home=home)
    assert stopped.returncode == 0, stopped.stderr
    assert "still running" not in stopped.stdout, stopped.stdout
    assert "run g" in stopped.stdout
    assert " stopped" in stopped.stdout.splitlines()[0], stopped.stdout
    assert not node_processes(run_id), "nodes outlived the stop"
