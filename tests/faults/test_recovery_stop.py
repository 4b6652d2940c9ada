"""A `flow stop` the daemon died in the middle of is finished by the next daemon, never
undone: adopted within the grace, the stop goes on; started again after it, nothing of the
run is started (C6: a run stopped by request never comes back)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_tools import runs
from helpers import BOUND_S, NODES, daemon_down, flow, flow_env, wait_for
from procs import daemon_pid, node_processes, wait_gone

GRAPH = f"""
nodes:
  - id: stubborn
    path: {NODES}/stubborn.py
    inputs:
      tick: flow/timer/millis/100
  - id: steady
    path: {NODES}/spawncount.py
    env: {{SPAWN_FILE: SPAWNS}}
    inputs:
      tick: flow/timer/millis/100
"""


@pytest.mark.parametrize("grace", ["60s", "2s"], ids=["adopted", "started-again"])
def test_a_stop_cut_short_by_a_crash_is_finished(
    flow_home: Path, tmp_path: Path, grace: str
) -> None:
    try:
        stop_then_crash(flow_home, tmp_path, {"FLOW_DAEMON_GRACE": grace})
    finally:
        daemon_down(flow_home)


def stop_then_crash(home: Path, tmp_path: Path, env: dict[str, str]) -> None:
    assert flow("up", home=home, env_extra=env).returncode == 0
    spawns = tmp_path / "spawns"
    yml = tmp_path / "stub.yml"
    yml.write_text(GRAPH.replace("SPAWNS", str(spawns)))
    assert flow("start", str(yml), "--detach", "--name", "stub", home=home).returncode == 0
    wait_for(lambda: "stubborn: running" in flow("logs", "stub", "stubborn", home=home).stdout,
             "stubborn never ran")  # fmt: skip
    run_id = runs(home)["stub"]["id"]
    stopping = subprocess.Popen(
        [sys.executable, "-m", "cli", "stop", "stub", "--grace", "4s"],
        env=flow_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: "ignoring STOP" in flow("logs", "stub", "stubborn", home=home).stdout,
             "the stop never reached stubborn")  # fmt: skip
    killed = daemon_pid(home)
    os.kill(killed, signal.SIGKILL)  # in the middle of the stop's grace
    assert not wait_gone([killed], 10), "the daemon outlived SIGKILL"
    assert "stubborn" in node_processes(run_id), "the stop was over before the crash"
    stopping.wait(timeout=BOUND_S)
    if env["FLOW_DAEMON_GRACE"] == "2s":  # its keeper ends the nodes once the grace is over
        wait_for(lambda: not node_processes(run_id), "the keeper left the nodes running")
    assert flow("up", home=home, env_extra=env).returncode == 0
    deadline = time.monotonic() + BOUND_S
    while (run := runs(home)["stub"])["status"] == "running":
        assert time.monotonic() < deadline, f"the stop was never finished: {run}"
        time.sleep(0.3)
    assert run["status"] == "stopped", run
    assert not node_processes(run_id), "a node of the stopped run runs on"
    assert len(spawns.read_text().splitlines()) == 1  # never started again
