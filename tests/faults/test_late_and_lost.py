"""Late messages, a full log disk, a frozen dynamic node, a lost dataflow copy (issue 11 item 13).

A flood of one kind of event logs one WARNING per key, then DEBUG (row 30, D4, M2); a
dynamic node that froze past its heartbeat is refused and told to stop when it resumes
(P2); a run whose copy of the dataflow is lost still recovers, from the store (C3).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import zmq
from fault_tools import tmpfs
from helpers import NODES, flow, flow_env
from procs import daemon_pid, node_processes

from node_sdk import channel, paths

FINITE = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    env: {{COUNT: 5}}
    inputs:
      tick: flow/timer/millis/10
    outputs: [count]
  - id: sink
    path: {NODES}/seqsink.py
    inputs:
      data: counter/count
"""

DYNAMIC = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs:
      tick: flow/timer/millis/20
    outputs: [count]
  - id: viewer
    path: dynamic
    inputs:
      data: counter/count
    outputs: [seen]
"""


def _alive(pid: int) -> bool:
    """Running and not a zombie (`kill -0` succeeds on a zombie)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _daemon_log(home: Path) -> str:
    return paths.daemon_log(home).read_text()


def _runs(home: Path) -> dict[str, dict]:
    done = flow("list", "--all", "--json", home=home)
    assert done.returncode == 0, done.stderr
    return {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}


def _warnings(text: str, pattern: str) -> int:
    return len([line for line in text.splitlines() if " WARNING " in line and pattern in line])


def test_row30_late_messages_warn_once_per_key(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "finite.yml"
    yml.write_text(FINITE)
    done = flow("start", str(yml), "--attach", "--name", "finite", home=daemon)
    assert done.returncode == 0, done.stderr
    run_id = _runs(daemon)["finite"]["id"]  # ended: its nodes are gone from the daemon
    pid = daemon_pid(daemon)
    context = zmq.Context()
    try:
        senders = []
        for node in ("counter", "sink"):
            dealer = context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.IDENTITY, f"{run_id}/{node}/1".encode())
            dealer.connect(f"ipc://{paths.socket_dir(daemon) / paths.NODES_SOCKET}")
            senders.append(dealer)
        stats = channel.encode(channel.Stats(inputs={}, outputs={}))
        for _ in range(500):  # late: the run ended before any of them was sent
            for dealer in senders:
                dealer.send(stats)
                dealer.send(channel.encode(channel.Bye()))
        assert flow("status", home=daemon).returncode == 0  # answered after the flood
    finally:
        context.destroy(linger=0)
    assert _alive(pid)
    deadline = time.monotonic() + 5
    while f"unknown node sink of run {run_id}" not in _daemon_log(daemon):
        assert time.monotonic() < deadline, _daemon_log(daemon)[-2000:]
        time.sleep(0.1)
    text = _daemon_log(daemon)
    for node in ("counter", "sink"):  # one line per sender (the key), not per message
        assert _warnings(text, f"unknown node {node} of run {run_id}") == 1, text[-3000:]


def test_m2_full_log_disk_warns_once_per_cause(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "chatty.yml"
    yml.write_text(
        f"""
nodes:
  - id: chatty
    path: {NODES}/chatty.py
    env: {{LINES: 3000}}
  - id: chatty2
    path: {NODES}/chatty.py
    env: {{LINES: 3000}}
"""
    )
    with tmpfs(daemon / "runs", "size=64k,mode=0700"):
        done = flow("start", str(yml), "--attach", "--name", "full", home=daemon, timeout=120)
        info = _runs(daemon)["full"]
    assert done.returncode == 0, done.stderr
    assert info["status"] == "succeeded"
    dropped = int(re.findall(r"\((\d+) log lines? dropped\)", info["degraded"])[0])
    assert dropped > 1000  # the tally went on counting...
    cause = "degraded: logs: No space left on device"
    assert _warnings(_daemon_log(daemon), cause) == 1, _daemon_log(daemon)[-3000:]
    # ...one warning said it as it happened, and the summary once more at the end (M5)
    assert done.stderr.count(f"warning: {cause}") == 2, done.stderr


def test_p2_frozen_dynamic_node_is_refused_and_stopped(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "dynamic.yml"
    yml.write_text(DYNAMIC)
    assert flow("start", str(yml), "--detach", "--name", "dyn", home=daemon).returncode == 0
    env = flow_env(daemon, {"WANT": "1000000", "VIEWER_RUN": "dyn"})
    old = subprocess.Popen(
        [sys.executable, str(NODES / "viewer.py")], env=env, stdout=subprocess.DEVNULL
    )
    new: subprocess.Popen[str] | None = None  # the replacement
    try:
        deadline = time.monotonic() + 15
        while "dynamic node viewer attached" not in _daemon_log(daemon):
            assert time.monotonic() < deadline, _daemon_log(daemon)
            assert old.poll() is None
            time.sleep(0.1)
        old.send_signal(signal.SIGSTOP)  # frozen: no heartbeat for longer than 3 s
        deadline = time.monotonic() + 15
        while "detached: no report" not in _daemon_log(daemon):
            assert time.monotonic() < deadline, _daemon_log(daemon)[-2000:]
            time.sleep(0.1)
        old.send_signal(signal.SIGCONT)  # it resumes, as if nothing had happened
        try:
            old.wait(timeout=10)  # told to stop: its generation is over
        except subprocess.TimeoutExpired:
            raise AssertionError(_daemon_log(daemon)[-2000:]) from None
        assert "refused" in _daemon_log(daemon)
        assert re.search(
            r"node viewer: refused \w+ from generation 1 \(detached\)", _daemon_log(daemon)
        )
        # the slot is free: a new process attaches as generation 2, the only one there is
        new = subprocess.Popen(
            [sys.executable, str(NODES / "viewer.py")], env={**env, "WANT": "5"},
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        out, _ = new.communicate(timeout=20)
        assert new.returncode == 0, out
        assert "viewer got 5" in out
        viewer = next(n for n in _runs(daemon)["dyn"]["nodes"] if n["id"] == "viewer")
        assert viewer["generation"] == 2
    finally:
        for process in (old, new):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        flow("stop", "dyn", home=daemon)


def test_c3_lost_dataflow_copy_recovers_from_the_store(flow_home: Path, tmp_path: Path) -> None:
    assert flow("up", home=flow_home).returncode == 0
    try:
        yml = tmp_path / "stream.yml"
        yml.write_text(DYNAMIC)
        for name in ("kept", "gone"):
            assert (
                flow("start", str(yml), "--detach", "--name", name, home=flow_home).returncode == 0
            )
        runs = _runs(flow_home)
        os.kill(daemon_pid(flow_home), signal.SIGKILL)
        for name in ("kept", "gone"):  # someone's cleanup, a full disk: the copies are lost
            (paths.run_dir(flow_home, runs[name]["id"]) / "dataflow.yml").unlink()
        db = sqlite3.connect(paths.state_db(flow_home))
        with db:  # an older store kept no text: nothing to recover "gone" from
            db.execute("UPDATE runs SET text = NULL WHERE id = ?", (runs["gone"]["id"],))
        db.close()
        assert flow("up", home=flow_home).returncode == 0
        after = _runs(flow_home)
        assert after["kept"]["status"] == "running"
        assert after["kept"]["recovered"]
        assert (
            paths.run_dir(flow_home, runs["kept"]["id"]) / "dataflow.yml"
        ).read_text() == DYNAMIC
        assert after["gone"]["status"] == "failed"
        error = after["gone"]["error"]
        assert "dataflow.yml cannot be read" in error, error
        assert "state store has no copy" in error
        deadline = time.monotonic() + 10
        while node_processes(runs["gone"]["id"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not node_processes(runs["gone"]["id"])  # nothing of it left running
    finally:
        flow("down", "--force", home=flow_home)
