"""Daemon crashes and signals (SPEC 7.4): nodes live through, come back, or stop by themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fault_tools import ADOPT_GRACE, GRACE, diagnostics, run_info, start, up
from helpers import flow, flow_env
from procs import daemon_pid, keeper_pid, node_processes, wait_gone


def sink_summary(home: Path, name: str) -> str:
    log = flow("logs", name, "sink", home=home).stdout
    lines = [line for line in log.splitlines() if "summary" in line]
    assert lines, log[-2000:]
    return lines[-1]


def wait_for_values(home: Path, name: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log = flow("logs", name, "sink", "--tail", "1", home=home).stdout
        if "got data" in log and int(log.split("got data ")[1].split()[0]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError("the sink never received enough values")


def test_sigkill_and_quick_restart_adopts_the_living(flow_home: Path, tmp_path: Path) -> None:
    up(flow_home, ADOPT_GRACE)  # the new daemon comes back within it, however slowly
    before = start(flow_home, tmp_path, "steady")
    wait_for_values(flow_home, "steady", 10)
    os.kill(daemon_pid(flow_home), signal.SIGKILL)
    time.sleep(1.0)  # data keeps flowing node to node meanwhile
    up(flow_home, ADOPT_GRACE)
    after = run_info(flow_home, "steady")
    assert after["status"] == "running"
    assert after["recovered"] is True
    for old, new in zip(before["nodes"], after["nodes"], strict=True):
        assert new["pid"] == old["pid"], diagnostics(flow_home)  # adopted, not restarted
        assert new["restarts"] == 0
        assert new["generation"] == 1
    time.sleep(1.0)
    assert flow("stop", "steady", home=flow_home).returncode == 0
    summary = sink_summary(flow_home, "steady")
    assert "gaps=0 repeats=0" in summary, summary
    assert flow("down", home=flow_home).returncode == 0


def test_sigkill_without_restart_then_recovery(flow_home: Path, tmp_path: Path) -> None:
    up(flow_home)
    info = start(flow_home, tmp_path, "orphan")
    pids = [n["pid"] for n in info["nodes"]]
    os.kill(daemon_pid(flow_home), signal.SIGKILL)
    # SPEC 7.4: past the grace every node stops by itself (SIGTERM, then SIGKILL after 5 s)
    left = wait_gone(pids, float(GRACE) + 5 + 5)
    assert not left, f"nodes outlived the daemon's grace: {left}"
    up(flow_home)
    seen: dict[str, set[int]] = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # sampled every 50 ms: never two live per node
        for node, live in node_processes(info["id"]).items():
            assert len(live) == 1, f"{node} has {len(live)} live processes"
            seen.setdefault(node, set()).update(live)
        time.sleep(0.05)
    assert {node: len(p) for node, p in seen.items()} == {"counter": 1, "sink": 1}
    after = run_info(flow_home, "orphan")
    assert after["status"] == "running"
    assert after["recovered"] is True
    assert [n["generation"] for n in after["nodes"]] == [2, 2]  # each started once more
    assert flow("down", home=flow_home).returncode == 0


def test_sigterm_interrupts_and_the_run_comes_back(flow_home: Path, tmp_path: Path) -> None:
    up(flow_home)
    info = start(flow_home, tmp_path, "resumable")
    pids = [n["pid"] for n in info["nodes"]]
    daemon = daemon_pid(flow_home)
    os.kill(daemon, signal.SIGTERM)
    assert not wait_gone([*pids, daemon], 15), "SIGTERM did not stop the nodes and daemon"
    up(flow_home)
    back = run_info(flow_home, "resumable")
    assert back["status"] == "running"
    assert back["recovered"] is True
    assert all(n["generation"] == 2 for n in back["nodes"])
    # `flow down` is a stop by request: nothing comes back after it
    assert flow("down", home=flow_home).returncode == 0
    up(flow_home)
    assert run_info(flow_home, "resumable")["status"] == "stopped"
    assert flow("list", home=flow_home).stdout.count("resumable") == 0
    assert flow("down", home=flow_home).returncode == 0


def test_a_keeper_stalled_across_a_daemon_restart_is_waited_for_and_adopted(
    flow_home: Path, tmp_path: Path
) -> None:
    up(flow_home, ADOPT_GRACE)
    before = start(flow_home, tmp_path, "stalled")
    wait_for_values(flow_home, "stalled", 5)
    keeper = keeper_pid(flow_home, before["id"])
    os.kill(keeper, signal.SIGSTOP)  # it answers no one, the new daemon included
    try:
        os.kill(daemon_pid(flow_home), signal.SIGKILL)
        started = time.monotonic()
        up(flow_home, ADOPT_GRACE)
        assert time.monotonic() - started < 15.0  # the daemon serves while it waits
        time.sleep(3.0)
    finally:
        os.kill(keeper, signal.SIGCONT)
    deadline = time.monotonic() + 20.0
    while not (after := run_info(flow_home, "stalled"))["recovered"]:
        assert time.monotonic() < deadline, diagnostics(flow_home)
        time.sleep(0.2)
    assert after["status"] == "running"
    for old, new in zip(before["nodes"], after["nodes"], strict=True):
        assert (new["pid"], new["generation"]) == (old["pid"], 1), diagnostics(flow_home)
    log = (flow_home / "daemon.log").read_text()
    assert "its keeper lives but does not answer" in log
    assert flow("stop", "stalled", home=flow_home).returncode == 0
    assert "gaps=0 repeats=0" in sink_summary(flow_home, "stalled")
    assert flow("down", home=flow_home).returncode == 0


def test_flow_down_while_a_stalled_keeper_is_waited_for_stops_its_run(
    flow_home: Path, tmp_path: Path
) -> None:
    """`flow down` waits for the recovery of a run whose keeper stalled across a restart,
    then stops it: the run does not come back at the next `flow up`."""
    up(flow_home, ADOPT_GRACE)
    before = start(flow_home, tmp_path, "downed")
    wait_for_values(flow_home, "downed", 3)
    keeper = keeper_pid(flow_home, before["id"])
    os.kill(keeper, signal.SIGSTOP)
    try:
        os.kill(daemon_pid(flow_home), signal.SIGKILL)
        up(flow_home, ADOPT_GRACE)
        down = subprocess.Popen([sys.executable, "-m", "cli", "down", "--grace", "2s"],
                                env=flow_env(flow_home), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(2.0)
    finally:
        os.kill(keeper, signal.SIGCONT)
    _, err = down.communicate(timeout=60)
    assert down.returncode == 0, err
    assert not wait_gone([n["pid"] for n in before["nodes"]], 5.0), diagnostics(flow_home)
    assert not node_processes(before["id"])
    up(flow_home, ADOPT_GRACE)
    assert run_info(flow_home, "downed")["status"] == "stopped", diagnostics(flow_home)
    assert flow("down", home=flow_home).returncode == 0
