"""`flow down` with no daemon alive ends the run keepers a killed daemon left, through the
daemon's own `python -m daemon end-orphans` (issue 10 defect 9); so does `flow down --force`
of a daemon that does not answer. Either is a stop by request: the runs are recorded
`stopped` and the next daemon does not bring them back."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from helpers import flow, stream_graph
from procs import daemon_pid, wait_gone

from node_sdk import paths

GRACE_S = 60  # far past what the test waits: only `flow down` can end the nodes in time


def _running(home: Path, tmp_path: Path, name: str) -> tuple[int, list[int]]:
    """A daemon with a long grace and a run `name`: its pid, and the run's node pids."""
    up = flow("up", home=home, env_extra={"FLOW_DAEMON_GRACE": str(GRACE_S)})
    assert up.returncode == 0, up.stderr
    yml = tmp_path / f"{name}.yml"
    yml.write_text(stream_graph(tick_ms=10))
    assert flow("start", str(yml), "--detach", "--name", name, home=home).returncode == 0
    info = json.loads(flow("list", "--json", home=home).stdout.splitlines()[0])
    pids = [n["pid"] for n in info["nodes"]]
    assert all(pids)
    return daemon_pid(home), pids


def test_down_without_daemon_ends_orphaned_keepers(flow_home: Path, tmp_path: Path) -> None:
    daemon, pids = _running(flow_home, tmp_path, "orphans")
    os.kill(daemon, signal.SIGKILL)
    assert not wait_gone([daemon], 10)
    assert wait_gone(pids, 0.5) == pids, "the nodes must outlive the daemon for its grace"
    # no daemon: `flow list` reads the store, and says the run waits for a daemon
    listed = flow("list", home=flow_home)
    assert listed.returncode == 0, listed.stderr
    assert "orphans" in listed.stdout, listed.stdout
    assert "running" in listed.stdout, listed.stdout
    assert "1 daemon run(s) wait for the next flow up" in listed.stderr

    down = flow("down", home=flow_home)
    assert down.returncode == 0, down.stderr
    assert "told 1 orphaned run keeper(s) to end" in down.stdout
    assert not wait_gone(pids, 20), "flow down left the orphaned nodes running"
    assert not Path(paths.control_endpoint(flow_home).removeprefix("ipc://")).exists()
    _never_back(flow_home, "orphans")


def _never_back(home: Path, name: str) -> None:
    """The next daemon finds the run stopped, its nodes stopped, and starts nothing."""
    try:
        assert flow("up", home=home).returncode == 0
        listed = [json.loads(line) for line in flow("list", "--all", "--json",
                                                    home=home).stdout.splitlines()]  # fmt: skip
        run = next(r for r in listed if r["name"] == name)
        assert (run["status"], run["recovered"]) == ("stopped", False), run
        assert {n["status"] for n in run["nodes"]} == {"stopped"}, run["nodes"]
    finally:
        flow("down", "--force", home=home)


def test_down_force_of_a_frozen_daemon_stops_its_runs(flow_home: Path, tmp_path: Path) -> None:
    daemon, pids = _running(flow_home, tmp_path, "frozen")
    os.kill(daemon, signal.SIGSTOP)  # alive, but it answers nothing
    try:
        refused = flow("down", home=flow_home)
        assert refused.returncode != 0
        assert "flow down --force" in refused.stderr
        down = flow("down", "--force", home=flow_home)
        assert down.returncode == 0, down.stderr
        assert "told 1 orphaned run keeper(s) to end" in down.stdout
    finally:
        for left in wait_gone([daemon], 0.1):  # none once --force killed it
            os.kill(left, signal.SIGKILL)
    assert not wait_gone(pids, 20), "flow down --force left the nodes running"
    _never_back(flow_home, "frozen")
