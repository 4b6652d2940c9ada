"""Escaping processes (matrix row 11, issue item 7): a node's setsid and double-forked
descendants end with the run, under `flow stop`, `flow down` and `flow run`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
from helpers import NODES, flow
from procs import keeper_pid, node_processes, wait_gone


def _escaper(tmp_path: Path) -> tuple[Path, Path]:
    pid_file = tmp_path / "escaped"
    yml = tmp_path / "escape.yml"
    yml.write_text(
        f"nodes:\n  - id: escaper\n    path: {NODES}/escaper.py\n"
        f"    env: {{ESCAPER_FILE: {pid_file}}}\n"
    )
    return yml, pid_file


def _escaped(pid_file: Path, node: int | None) -> list[int]:
    deadline = time.monotonic() + 20
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the node never wrote its descendants' pids"
        time.sleep(0.05)
    pids = [int(x) for x in pid_file.read_text().split()]
    for pid in pids if node is not None else ():
        assert psutil.pid_exists(pid)
        assert os.getsid(pid) != os.getsid(node)  # out of reach of the node's group
    return pids


def _node_pid(run_id: str) -> int:
    deadline = time.monotonic() + 20
    while "escaper" not in (live := node_processes(run_id)):
        assert time.monotonic() < deadline, "the node never started"
        time.sleep(0.05)
    return live["escaper"][0]


def _run_id(home: Path, name: str) -> str:
    runs = [json.loads(x) for x in flow("list", "--all", "--json", home=home).stdout.splitlines()]
    return next(r["id"] for r in runs if r["name"] == name)


def test_row11_setsid_descendants_end_with_flow_stop(daemon: Path, tmp_path: Path) -> None:
    yml, pid_file = _escaper(tmp_path)
    assert flow("start", str(yml), "--detach", "--name", "esc", home=daemon).returncode == 0
    run_id = _run_id(daemon, "esc")
    escaped = _escaped(pid_file, _node_pid(run_id))
    assert flow("stop", "esc", home=daemon).returncode == 0
    assert not wait_gone(escaped, 5), "a setsid descendant outlived flow stop"
    assert node_processes(run_id) == {}  # the psutil sample: nothing of the run is left


def test_row11_setsid_descendants_end_with_flow_down(daemon: Path, tmp_path: Path) -> None:
    yml, pid_file = _escaper(tmp_path)
    assert flow("start", str(yml), "--detach", "--name", "esc", home=daemon).returncode == 0
    run_id = _run_id(daemon, "esc")
    escaped = _escaped(pid_file, _node_pid(run_id))
    assert flow("down", home=daemon).returncode == 0
    assert not wait_gone(escaped, 5), "a setsid descendant outlived flow down"
    assert node_processes(run_id) == {}


def test_row11_setsid_descendants_end_with_flow_run(flow_home: Path, tmp_path: Path) -> None:
    yml, pid_file = _escaper(tmp_path)
    done = flow("run", str(yml), "--stop-after", "2s", home=flow_home, timeout=60)
    assert done.returncode == 0, done.stderr
    escaped = _escaped(pid_file, None)
    assert not wait_gone(escaped, 5), "a setsid descendant outlived flow run"


def test_row11_setsid_descendants_end_with_a_sigkilled_keeper(
    daemon: Path, tmp_path: Path
) -> None:
    yml, pid_file = _escaper(tmp_path)
    assert flow("start", str(yml), "--detach", "--name", "esc", home=daemon).returncode == 0
    run_id = _run_id(daemon, "esc")
    escaped = _escaped(pid_file, _node_pid(run_id))
    # it cannot end what it tracked: the daemon finds them by their FLOW_DATAFLOW
    os.kill(keeper_pid(daemon, run_id), signal.SIGKILL)
    assert not wait_gone(escaped, 10), "a setsid descendant outlived its SIGKILLed keeper"
    assert node_processes(run_id) == {}
    log = (daemon / "daemon.log").read_text()
    assert "processes its lost keeper left" in log
