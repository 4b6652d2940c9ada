"""A `flow run` killed with SIGKILL takes its nodes with it (they die with its keeper
thread), not what they started in a session of their own or left in their group: the next
`flow run` (or `flow up`) that settles the dead run kills those too. Nothing did before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import BOUND_S, daemon_down, flow, flow_env, wait_for

SPAWNER = """
import subprocess, sys, time
from node_sdk import Node

with Node() as node:
    sleep = [sys.executable, "-c", "import time; time.sleep(3600)", sys.argv[1]]
    subprocess.Popen(sleep)  # in the node's group
    subprocess.Popen(sleep, start_new_session=True)  # a session of its own
    print("spawner: started both", flush=True)
    for event in node:
        pass
"""


def _left(marker: str) -> list[psutil.Process]:
    """The node's two sleeps (the node's own command line carries the marker too)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if marker in cmdline and "import time; time.sleep(3600)" in cmdline:
            found.append(process)
    return found


@pytest.mark.parametrize("settled_by", ["flow run", "flow up"])
def test_what_a_killed_flow_runs_nodes_left_is_killed_at_the_next_start(
    flow_home: Path, tmp_path: Path, settled_by: str
) -> None:
    marker = f"flow-leftover-{os.getpid()}-{settled_by.replace(' ', '-')}"
    (tmp_path / "spawner.py").write_text(SPAWNER)
    yml = tmp_path / "left.yml"
    yml.write_text(f"nodes:\n  - id: spawner\n    path: spawner.py\n    args: {marker}\n"
                   "    inputs: {tick: flow/timer/millis/500}\n")  # fmt: skip
    running = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(yml)], env=flow_env(flow_home),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: len(_left(marker)) == 2, "the node's two sleeps")
        running.kill()  # no cleanup of its own
        running.wait(timeout=BOUND_S)
        time.sleep(0.5)  # the node dies with the process (its parent-death signal)
        assert len(_left(marker)) == 2  # what it started outlives it
        if settled_by == "flow run":
            other = tmp_path / "other.yml"
            other.write_text("nodes:\n  - id: a\n    path: sh\n    args: -c 'echo hi'\n")
            done = flow("run", str(other), home=flow_home)
            assert done.returncode == 0, done.stdout + done.stderr
        else:
            assert flow("up", home=flow_home).returncode == 0
        wait_for(lambda: not _left(marker), "the dead run's leftovers killed")
        listed = flow("list", "--all", home=flow_home).stdout
        assert "failed" in listed, listed
    finally:
        for process in _left(marker):
            process.send_signal(signal.SIGKILL)
        if running.poll() is None:
            running.kill()
        daemon_down(flow_home)
