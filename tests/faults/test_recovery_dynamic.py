"""A dynamic node through a daemon crash: attached, it stays attached; free, its next
attach is a new generation its receivers take (SPEC 6, 7.4).

Before, the new daemon knew no dynamic node's generation: it told the attached process to
stop (its reports looked like an older generation's), showed the slot `running` with a dead
pid for good, and the next attach took generation 1 again, whose messages the sink refused
as old ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import BOUND_S, NODES, daemon_down, flow, flow_env, wait_for
from procs import daemon_pid, wait_gone

ADOPT = {"FLOW_DAEMON_GRACE": "60s"}
GRAPH = f"""
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
  - id: sink
    path: {NODES}/seqsink.py
    inputs:
      data: {{source: viewer/seen, queue_size: 1000}}
"""


def viewer_info(home: Path) -> dict[str, object]:
    done = flow("node", "info", "dyn", "viewer", "--json", home=home)
    return dict(json.loads(done.stdout)) if done.returncode == 0 else {}


def sink_lines(home: Path) -> int:
    return flow("logs", "dyn", "sink", home=home).stdout.count("got data")


def test_a_dynamic_node_through_a_daemon_crash(flow_home: Path, tmp_path: Path) -> None:
    try:
        attach_through_a_crash(flow_home, tmp_path)
    finally:
        daemon_down(flow_home)


def attach_through_a_crash(home: Path, tmp_path: Path) -> None:
    assert flow("up", home=home, env_extra=ADOPT).returncode == 0
    yml = tmp_path / "dyn.yml"
    yml.write_text(GRAPH)
    assert flow("start", str(yml), "--detach", "--name", "dyn", home=home).returncode == 0
    attached = subprocess.Popen(
        [sys.executable, str(NODES / "viewer.py")], env=flow_env(home, {"WANT": "1000000"}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: viewer_info(home).get("status") == "running", "viewer never attached")
        killed = daemon_pid(home)
        os.kill(killed, signal.SIGKILL)
        assert not wait_gone([killed], 10), "the daemon outlived SIGKILL"
        assert flow("up", home=home, env_extra=ADOPT).returncode == 0
        seen = sink_lines(home)
        wait_for(lambda: sink_lines(home) > seen + 20, "the attached viewer's data stopped")
        info = viewer_info(home)
        assert (info["status"], info["pid"], info["generation"]) == ("running", attached.pid, 1)
        assert attached.poll() is None, "the attached viewer was told to stop"
    finally:
        attached.send_signal(signal.SIGINT)
        out, _ = attached.communicate(timeout=BOUND_S)
    deadline = time.monotonic() + BOUND_S
    while viewer_info(home).get("status") != "dynamic":
        assert time.monotonic() < deadline, f"the slot was not freed: {out[-500:]}"
        time.sleep(0.2)
    before = sink_lines(home)
    again = subprocess.run(
        [sys.executable, str(NODES / "viewer.py")], env=flow_env(home, {"WANT": "20"}),
        capture_output=True, text=True, timeout=BOUND_S, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert viewer_info(home)["generation"] == 2
    wait_for(lambda: sink_lines(home) >= before + 20, "the sink refused the new generation")
    stopped = flow("stop", "dyn", home=home)
    assert stopped.returncode == 0, stopped.stderr
    assert "repeats=0" in flow("logs", "dyn", "sink", home=home).stdout
