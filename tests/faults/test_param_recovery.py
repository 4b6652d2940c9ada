"""Parameters set with `flow param set` survive the daemon's end and its recovery of the run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from helpers import NODES, daemon_down, flow, records, wait_for
from procs import daemon_pid, wait_gone

GRACE_S = 3.0
ENV = {"FLOW_DAEMON_GRACE": f"{GRACE_S:g}s"}


def test_a_recovered_node_starts_with_the_values_set_before(
    flow_home: Path, tmp_path: Path
) -> None:
    try:
        recover_params(flow_home, tmp_path)
    finally:
        daemon_down(flow_home)


def recover_params(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "params.jsonl"
    yml = tmp_path / "params.yml"
    yml.write_text(
        f"""
nodes:
  - id: tuner
    path: {NODES}/tuner.py
    params: {{gain: 1.0, mode: fast}}
    env: {{PARAM_LOG: {log}}}
"""
    )
    assert flow("up", home=home, env_extra=ENV).returncode == 0
    assert flow("start", str(yml), "--detach", "--name", "rec", home=home).returncode == 0
    wait_for(lambda: log.exists() and bool(log.read_text()), "the tuner's first line")
    assert flow("param", "set", "rec", "tuner", "gain", "4", home=home).returncode == 0
    assert flow("param", "delete", "rec", "tuner", "mode", home=home).returncode == 0
    listed = flow("node", "info", "rec", "tuner", "--json", home=home)
    pid = json.loads(listed.stdout)["pid"]
    os.kill(daemon_pid(home), signal.SIGTERM)  # the run is interrupted, to come back
    assert not wait_gone([pid], GRACE_S + 12), "the node outlived the daemon"
    assert flow("up", home=home, env_extra=ENV).returncode == 0
    starts = lambda: [e for e in records(log) if "start" in e]  # noqa: E731
    wait_for(lambda: len(starts()) == 2, "the recovered generation's first line")
    assert starts()[-1] == {"start": {"gain": 4}}
    done = flow("param", "list", "rec", "tuner", "--json", home=home)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"gain": 4}
    assert flow("stop", "rec", home=home).returncode == 0
