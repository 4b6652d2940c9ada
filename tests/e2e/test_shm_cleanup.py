"""No shared-memory segment of a run is left in /dev/shm once the run has ended, however it
ended: normally, after a node was SIGKILLed, and after the daemon was SIGKILLed and
`flow down` ran (the daemon and the run's keeper remove them by the run's prefix)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

from helpers import flow, write_dataflow

from node_sdk.shm import run_prefix

BOUND_S = 40.0  # a safety bound on waits, never an assertion about speed

SENDER = """
import os, time
from node_sdk import Node
with Node() as node:
    for i in range(20):
        node.send_output("out", bytes([i]) * 200_000)
    open(os.environ["PID_FILE"], "w").write(str(os.getpid()))
    if os.environ.get("HOLD"):
        for event in node:  # until stopped
            pass
"""

RECEIVER = """
from node_sdk import Node
held = []
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            held.append(event.value)  # every view held until the node exits
"""

YAML = """
nodes:
  - id: sender
    path: sender.py
    inputs: {tick: dora/timer/secs/100}
    outputs: [out]
    env: {PID_FILE: PIDFILE, HOLD: 'HOLDING'}
  - id: receiver
    path: receiver.py
    inputs:
      in: {source: sender/out, queue_size: 100}
"""


def _segments(home: Path) -> set[str]:
    """The segments of this home's runs only (other tests may run at the same time); the
    run ids come from the state store itself, which needs no daemon."""
    with contextlib.closing(sqlite3.connect(home / "state.db")) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM runs")]
    assert ids, "no run recorded in this home"
    prefixes = tuple(run_prefix(run_id) for run_id in ids)
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefixes)}


def _dataflow(tmp_path: Path, hold: bool) -> Path:
    text = YAML.replace("PIDFILE", str(tmp_path / "sender.pid"))
    text = text.replace("HOLDING", "1" if hold else "")
    return write_dataflow(tmp_path, text, {"sender.py": SENDER, "receiver.py": RECEIVER})


def _wait(condition: object, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_run_that_ends_normally_leaves_no_segment(flow_home: Path, tmp_path: Path) -> None:
    yml = _dataflow(tmp_path, hold=False)
    yml.write_text(yml.read_text().replace("    inputs: {tick: dora/timer/secs/100}\n", ""))
    done = flow("run", str(yml), home=flow_home, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _segments(flow_home) == set()


def test_sigkill_of_a_node_then_stop_leaves_no_segment(daemon: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "sender.pid"
    done = flow(
        "start", str(_dataflow(tmp_path, hold=True)), "--detach", "--name", "k", home=daemon
    )
    assert done.returncode == 0, done.stderr
    _wait(lambda: pid_file.exists() and pid_file.read_text(), "the sender never sent")
    assert _segments(daemon)  # the receiver holds them: they exist
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    # the receiver's input closes and the run may well end (failed) before the stop
    assert flow("stop", "k", home=daemon).returncode in (0, 1)
    _wait(lambda: not _segments(daemon), "segments left after the run ended")


def test_daemon_sigkill_then_down_leaves_no_segment(flow_home: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "sender.pid"
    assert flow("up", home=flow_home, env_extra={"FLOW_DAEMON_GRACE": "2"}).returncode == 0
    try:
        done = flow("start", str(_dataflow(tmp_path, hold=True)), "--detach", home=flow_home)
        assert done.returncode == 0, done.stderr
        _wait(lambda: pid_file.exists() and pid_file.read_text(), "the sender never sent")
        daemon_pid = int((flow_home / "daemon.pid").read_text().split()[0])
        os.kill(daemon_pid, signal.SIGKILL)
    finally:
        flow("down", "--force", home=flow_home)
    # the keeper outlives the daemon by its grace, stops the nodes, then removes the segments
    _wait(lambda: not _segments(flow_home), "segments left after the daemon was killed")
