"""`flow node list|info|stop|restart` on a live run, as a user drives them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from helpers import BOUND_S, NODES, flow, flow_env, stream_graph

STREAM = stream_graph(tick_ms=20)


def start(home: Path, tmp_path: Path, name: str) -> None:
    yml = tmp_path / "ops.yml"
    yml.write_text(STREAM)
    assert flow("start", str(yml), "--detach", "--name", name, home=home).returncode == 0


def info(home: Path, name: str, node: str) -> dict:
    done = flow("node", "info", name, node, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_node_list_and_info(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "ops")
    listed = flow("node", "list", "ops", home=daemon)
    assert listed.returncode == 0, listed.stderr
    for word in ("NODE", "counter", "sink", "running", "GEN"):
        assert word in listed.stdout
    sink = info(daemon, "ops", "sink")
    assert sink["status"] == "running"
    assert sink["inputs"] == {"data": "counter/count"}
    counter = info(daemon, "ops", "counter")
    assert counter["outputs"] == ["count"]
    assert counter["inputs"] == {"tick": "flow/timer/millis/20"}
    unknown = flow("node", "info", "ops", "nope", home=daemon)
    assert unknown.returncode == 1
    assert "no node 'nope'" in unknown.stderr
    assert flow("stop", "ops", home=daemon).returncode == 0


def test_node_restart_gives_a_new_generation(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "again")
    time.sleep(0.5)
    before = info(daemon, "again", "counter")
    done = flow("node", "restart", "again", "counter", "--grace", "2", home=daemon)
    assert done.returncode == 0, done.stderr
    after = info(daemon, "again", "counter")
    assert after["generation"] == before["generation"] + 1
    assert after["pid"] != before["pid"]
    assert after["status"] == "running"
    assert info(daemon, "again", "sink")["generation"] == 1  # the others are untouched
    time.sleep(0.5)
    assert flow("stop", "again", home=daemon).returncode == 0
    summary = flow("logs", "again", "sink", home=daemon).stdout.splitlines()[-1]
    assert "repeats=0" in summary, summary  # no duplicate reached the sink


def test_node_stop_ends_one_node_and_closes_downstream(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "partial")
    done = flow("node", "stop", "partial", "counter", "--grace", "2", home=daemon)
    assert done.returncode == 0, done.stderr
    assert "stopped" in done.stdout
    deadline = time.monotonic() + 10
    while "stop ALL_INPUTS_CLOSED" not in flow("logs", "partial", "sink", home=daemon).stdout:
        assert time.monotonic() < deadline, "the sink's input never closed"
        time.sleep(0.1)
    again = flow("node", "stop", "partial", "counter", home=daemon)
    assert again.returncode in (1, 2)
    assert "is not running" in again.stderr or "not active" in again.stderr


def test_an_ended_node_is_not_restarted_and_the_answer_says_what_does(
    daemon: Path, tmp_path: Path
) -> None:
    yml = tmp_path / "ended.yml"
    yml.write_text("nodes:\n  - id: brief\n    path: sh\n    args: -c 'exit 3'\n"
                   "  - id: idle\n    path: sleep\n    args: '3600'\n")  # fmt: skip
    assert flow("start", str(yml), "--detach", "--name", "ended", home=daemon).returncode == 0
    deadline = time.monotonic() + 15  # a bound on a loaded machine
    while '"failed"' not in flow("node", "info", "ended", "brief", "--json", home=daemon).stdout:
        assert time.monotonic() < deadline, "brief never ended"
        time.sleep(0.1)
    restart = flow("node", "restart", "ended", "brief", home=daemon)
    assert restart.returncode == 1, restart.stderr  # a failed operation, not bad input
    assert "node 'brief' of run ended is not running: it has ended (failed)" in restart.stderr
    assert "`flow restart ended` starts the whole run again" in restart.stderr
    assert flow("stop", "ended", home=daemon).returncode == 0


def test_node_stop_reaches_a_node_between_restarts_and_a_dynamic_one(
    daemon: Path, tmp_path: Path
) -> None:
    """A node waiting out its restart delay is stopped for good (`stopped`, not the failure
    it was to be restarted from); an attached dynamic node is told to stop and let go; a
    dynamic node cannot be restarted by flow, and says why."""
    yml = tmp_path / "waits.yml"
    yml.write_text("""
nodes:
  - id: crashy
    path: sh
    args: -c 'exit 3'
    restart_policy: on-failure
    restart_delay: 60
  - id: crashy2
    path: sh
    args: -c 'exit 3'
    restart_policy: on-failure
    restart_delay: 60
  - id: steady
    path: sleep
    args: "600"
  - id: viewer
    path: dynamic
    inputs:
      tick: flow/timer/millis/50
    outputs: [seen]
""")
    assert flow("start", str(yml), "--detach", "--name", "waits", home=daemon).returncode == 0
    deadline = time.monotonic() + BOUND_S
    while info(daemon, "waits", "crashy")["status"] != "restarting":
        assert time.monotonic() < deadline, "crashy never waited for its restart"
        time.sleep(0.2)
    waiting = info(daemon, "waits", "crashy")
    assert (waiting["pid"], waiting["exit_code"]) == (None, 3)  # no process; how it ended
    stopped = flow("node", "stop", "waits", "crashy", home=daemon)
    assert stopped.returncode == 0, stopped.stderr
    assert "node crashy: stopped" in stopped.stdout
    attached = subprocess.Popen([sys.executable, str(NODES / "viewer.py")],
                                env=flow_env(daemon, {"WANT": "1000000"}), text=True,
                                stdout=subprocess.PIPE)  # fmt: skip
    try:
        while info(daemon, "waits", "viewer")["status"] != "running":
            assert time.monotonic() < deadline, "the viewer never attached"
            time.sleep(0.2)
        again = flow("node", "restart", "waits", "viewer", home=daemon)
        assert again.returncode == 2
        assert "is dynamic: its process is not flow's to start" in again.stderr
        told = flow("node", "stop", "waits", "viewer", home=daemon)
        assert told.returncode == 0, told.stderr
        assert "node viewer: dynamic" in told.stdout  # let go: free for another attach
        assert attached.wait(timeout=BOUND_S) == 0
    finally:
        attached.kill()
        attached.communicate()
    # a stop of the run finds crashy2 in its restart delay: stopped, and so is the run (it
    # stayed `failed` as it had ended, and so the run failed)
    assert info(daemon, "waits", "crashy2")["status"] == "restarting"
    assert flow("stop", "waits", home=daemon).returncode == 0
    ended = json.loads(flow("list", "--all", "--json", home=daemon).stdout.splitlines()[-1])
    assert ended["status"] == "stopped", ended
    crashy2 = next(n for n in ended["nodes"] if n["id"] == "crashy2")
    assert (crashy2["status"], crashy2["exit_code"]) == ("stopped", 3), crashy2
