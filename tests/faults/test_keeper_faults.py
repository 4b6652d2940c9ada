"""A keeper that dies (SIGKILL) or raises: its run fails, its nodes stop, the daemon goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fault_tools import STREAM, diagnostics, run_info, start
from helpers import NODES, flow, flow_env, wait_for
from procs import keeper_pid, node_processes, wait_gone

from node_sdk import paths

# the keeper is noticed at once when it exits (KEEPER_SILENCE_S bounds a silent one)
NOTICED_S = 10.0
ANSWER_S = 5.0  # `flow stop` / `flow down` on a run whose keeper is gone: at once
# a keeper stopped this long is past KEEPER_SILENCE_S (4 s) and well within KEEPER_HUNG_S
STALL_S = 7.0
STOP_STALL_S = 14.0


def wait_ended(home: Path, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = run_info(home, name)
        if info["status"] not in ("starting", "running"):
            return info
        time.sleep(0.1)
    raise AssertionError(f"run {name} still {info['status']}\n{diagnostics(home)}")


def assert_run_cleaned(home: Path, info: dict[str, Any]) -> None:
    assert info["status"] == "failed", info
    assert "keeper" in (info["error"] or ""), info
    pids = [n["pid"] for n in info["nodes"] if n["pid"]]
    assert pids
    assert not wait_gone(pids, 5.0), diagnostics(home)
    assert not node_processes(info["id"])
    assert not paths.run_socket_dir(paths.socket_dir(home), info["id"]).exists()
    started = time.monotonic()
    stopped = flow("stop", info["id"], home=home)
    assert time.monotonic() - started < ANSWER_S
    assert "cannot reach" not in stopped.stderr, stopped.stderr
    started = time.monotonic()
    down = flow("down", home=home)
    assert down.returncode == 0, down.stderr
    assert time.monotonic() - started < ANSWER_S + 5.0  # the daemon's own shutdown included


def test_a_sigkilled_keeper_fails_its_run_and_stops_its_nodes(
    flow_home: Path, tmp_path: Path
) -> None:
    assert flow("up", home=flow_home).returncode == 0
    info = start(flow_home, tmp_path, "orphaned")
    os.kill(keeper_pid(flow_home, info["id"]), signal.SIGKILL)
    ended = wait_ended(flow_home, "orphaned", NOTICED_S)
    assert_run_cleaned(flow_home, ended)


def test_a_keeper_that_raises_stops_its_children_first(flow_home: Path, tmp_path: Path) -> None:
    up = flow("up", home=flow_home, env_extra={"FLOW_TEST_HOOKS": "keeper-raise"})
    assert up.returncode == 0, up.stderr
    yml = tmp_path / "raise.yml"
    yml.write_text(STREAM.replace("NODES", str(NODES)))
    flow("start", str(yml), "--detach", "--name", "raised", home=flow_home)
    ended = wait_ended(flow_home, "raised", NOTICED_S + 10.0)
    keeper_log = (paths.run_dir(flow_home, ended["id"]) / "keeper.log").read_text()
    assert "test fault: keeper raised" in keeper_log
    assert_run_cleaned(flow_home, ended)


def test_a_stalled_keeper_is_waited_for_and_its_run_goes_on(
    flow_home: Path, tmp_path: Path
) -> None:
    assert flow("up", home=flow_home).returncode == 0
    info = start(flow_home, tmp_path, "stalled")
    keeper = keeper_pid(flow_home, info["id"])
    os.kill(keeper, signal.SIGSTOP)  # alive, answering nothing: a keeper under heavy load
    try:
        time.sleep(STALL_S)
        during = run_info(flow_home, "stalled")
    finally:
        os.kill(keeper, signal.SIGCONT)
    assert during["status"] == "running", diagnostics(flow_home)
    daemon_log = paths.daemon_log(flow_home)
    wait_for(lambda: "run keeper answers again" in daemon_log.read_text(), "the keeper's answer")
    assert "its process alive: waiting for it" in daemon_log.read_text()
    after = run_info(flow_home, "stalled")
    assert after["status"] == "running", diagnostics(flow_home)
    for old, new in zip(info["nodes"], after["nodes"], strict=True):
        assert (new["pid"], new["restarts"]) == (old["pid"], 0), diagnostics(flow_home)
    assert flow("stop", "stalled", home=flow_home).returncode == 0
    log = flow("logs", "stalled", "sink", home=flow_home).stdout
    summary = [line for line in log.splitlines() if "summary" in line]
    assert summary, log[-2000:]
    assert "gaps=0 repeats=0" in summary[-1], summary[-1]
    assert not node_processes(info["id"])
    assert flow("down", home=flow_home).returncode == 0


def test_a_stop_waits_for_a_stalled_keeper(flow_home: Path, tmp_path: Path) -> None:
    """`flow stop` waits as long as the daemon waits for a stalled keeper: the stop ends
    when the keeper answers again, not with `did not answer` at the stop's own bound."""
    assert flow("up", home=flow_home).returncode == 0
    info = start(flow_home, tmp_path, "stalled-stop")
    keeper = keeper_pid(flow_home, info["id"])
    os.kill(keeper, signal.SIGSTOP)
    try:
        stopping = subprocess.Popen(
            [sys.executable, "-m", "cli", "stop", "stalled-stop", "--grace", "1"],
            env=flow_env(flow_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(STOP_STALL_S)  # past the 11.5 s a 1 s grace's stop once waited
    finally:
        os.kill(keeper, signal.SIGCONT)
    _, err = stopping.communicate(timeout=30)
    assert stopping.returncode == 0, err
    assert "did not answer" not in err
    ended = run_info(flow_home, "stalled-stop")
    assert ended["status"] == "stopped", diagnostics(flow_home)
    assert not node_processes(info["id"])
    assert flow("down", home=flow_home).returncode == 0
