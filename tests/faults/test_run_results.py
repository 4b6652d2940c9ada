"""Item 5 of the hardening issue: a crashed node fails the run, however the run was ended."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import BOUND_S, NODES, flow, flow_env

from daemon.store import Store
from node_sdk import paths


def crash_graph(tmp_path: Path) -> Path:
    """`crasher` exits 1 at its start; `steady` runs until stopped."""
    yml = tmp_path / "crash.yml"
    yml.write_text(
        f"""
nodes:
  - id: crasher
    path: {NODES}/crasher.py
    env: {{SPAWN_FILE: {tmp_path / "crashes"}}}
    inputs:
      tick: flow/timer/millis/100
  - id: steady
    path: {NODES}/spawncount.py
    env: {{SPAWN_FILE: {tmp_path / "steady"}}}
    inputs:
      tick: flow/timer/millis/100
"""
    )
    return yml


def last_run(home: Path) -> dict[str, Any]:
    """The newest run as the state store has it (a `flow run` needs no daemon to ask)."""
    store = Store.open(paths.state_db(home))
    try:
        return store.runs(include_ended=True)[-1]
    finally:
        store.close()


def wait_crashed(tmp_path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (tmp_path / "crashes").exists() or not (tmp_path / "steady").exists():
        assert time.monotonic() < deadline, "the nodes never started"
        time.sleep(0.05)


def wait_recorded_failed(home: Path) -> None:
    """Until the store has the crasher failed: its exit reaches the store some time after it
    wrote its file, longer than a fixed 0.5 s on a loaded machine."""
    deadline = time.monotonic() + BOUND_S
    while {n["id"]: n["status"] for n in last_run(home)["nodes"]}.get("crasher") != "failed":
        assert time.monotonic() < deadline, last_run(home)
        time.sleep(0.05)


def test_item5_stop_after_with_a_crashed_node_exits_1(flow_home: Path, tmp_path: Path) -> None:
    done = flow("run", str(crash_graph(tmp_path)), "--stop-after", "2s", home=flow_home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed" in done.stdout + done.stderr
    nodes = {n["id"]: n for n in last_run(flow_home)["nodes"]}
    assert nodes["crasher"]["status"] == "failed"
    assert nodes["crasher"]["exit_code"] == 1
    assert nodes["steady"]["status"] == "stopped"
    assert last_run(flow_home)["status"] == "failed"


def test_item5_sigterm_to_flow_run_with_a_crashed_node_exits_1(
    flow_home: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(crash_graph(tmp_path))],
        env=flow_env(flow_home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_crashed(tmp_path)
        wait_recorded_failed(flow_home)  # the crash is recorded before the stop
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, out + err
    assert last_run(flow_home)["status"] == "failed"


def test_item5_flow_stop_of_a_run_with_a_crashed_node_gives_failed(
    daemon: Path, tmp_path: Path
) -> None:
    yml = crash_graph(tmp_path)
    assert flow("start", str(yml), "--detach", "--name", "crashy", home=daemon).returncode == 0
    wait_crashed(tmp_path)
    wait_recorded_failed(daemon)  # the crash is recorded before the stop
    stopped = flow("stop", "crashy", home=daemon)
    assert stopped.returncode == 0, stopped.stderr
    assert "failed" in stopped.stdout
    info = last_run(daemon)
    assert info["status"] == "failed"
    assert {n["id"]: n["status"] for n in info["nodes"]} == {
        "crasher": "failed",
        "steady": "stopped",
    }
    # nothing was started again by the stop: one spawn each
    assert (tmp_path / "crashes").read_text().count("\n") == 1
    assert (tmp_path / "steady").read_text().split() == ["start"]
