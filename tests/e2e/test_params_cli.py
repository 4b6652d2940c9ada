"""`flow param list|get|set|delete` against a running node (docs/parameters.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import BOUND_S, NODES, flow, flow_env, records, wait_for


def start_tuner(home: Path, tmp_path: Path, name: str, env: str = "") -> Path:
    """Start a run whose `tuner` node logs its parameters; the log's path. `env`: more
    lines of its `env:` block."""
    log = tmp_path / "params.jsonl"
    yml = tmp_path / "params.yml"
    yml.write_text(
        f"""
nodes:
  - id: tuner
    path: {NODES}/tuner.py
    params:
      gain: 1.0
      mode: fast
      limits: {{low: 0, high: [1, 2]}}
    env:
      PARAM_LOG: {log}
      UNBLOCK_FILE: {tmp_path / "unblock"}
{env}  - id: idle
    path: sleep  # keeps the run going when tuner is stopped; a process node
    args: "3600"  # on past every step of the test, however slow; its stop ends it
"""
    )
    done = flow("start", str(yml), "--detach", "--name", name, home=home)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: log.exists() and bool(log.read_text()), "the tuner's first line")
    return log


def entries(log: Path, kind: str) -> list[dict[str, Any]]:
    return [entry for entry in records(log) if kind in entry]


def param_list(home: Path, name: str) -> dict[str, Any]:
    done = flow("param", "list", name, "tuner", "--json", home=home)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_yaml_params_reach_the_node_and_set_is_acknowledged(daemon: Path, tmp_path: Path) -> None:
    log = start_tuner(daemon, tmp_path, "tune")
    initial = {"gain": 1.0, "mode": "fast", "limits": {"low": 0, "high": [1, 2]}}
    assert entries(log, "start") == [{"start": initial}]
    assert param_list(daemon, "tune") == initial
    got = flow("param", "get", "tune", "tuner", "gain", home=daemon)
    assert (got.returncode, got.stdout.strip()) == (0, "1.0"), got.stderr

    done = flow("param", "set", "tune", "tuner", "gain", "2.5", home=daemon)
    assert done.returncode == 0, done.stderr
    assert "taken by the node" in done.stdout
    # the acknowledgement came after the node handled the event: it is in the log already
    seen = entries(log, "param")
    assert seen[-1] == {"param": "gain", "value": 2.5, "params": {**initial, "gain": 2.5}}
    assert param_list(daemon, "tune")["gain"] == 2.5

    deleted = flow("param", "delete", "tune", "tuner", "mode", home=daemon)
    assert deleted.returncode == 0, deleted.stderr
    assert entries(log, "param")[-1]["value"] is None
    assert "mode" not in entries(log, "param")[-1]["params"]
    assert "mode" not in param_list(daemon, "tune")
    listed = flow("param", "list", "tune", "tuner", home=daemon)
    assert "gain" in listed.stdout
    assert "2.5" in listed.stdout


def test_a_refused_value_fails_with_the_nodes_reason(daemon: Path, tmp_path: Path) -> None:
    log = start_tuner(daemon, tmp_path, "refuse")
    done = flow("param", "set", "refuse", "tuner", "gain", "-1", home=daemon)
    assert done.returncode != 0
    assert "gain must be >= 0" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    # the node put the old value back, and the daemon kept it
    assert entries(log, "rejected")[-1]["params"]["gain"] == 1.0
    assert param_list(daemon, "refuse")["gain"] == 1.0

    locked = flow("param", "set", "refuse", "tuner", "locked", "true", home=daemon)
    assert locked.returncode != 0
    assert "locked is read-only" in locked.stderr, locked.stderr
    assert not [e for e in entries(log, "param") if e["param"] == "locked"]  # never seen
    assert "locked" not in param_list(daemon, "refuse")

    bad = flow("param", "set", "refuse", "tuner", "gain", "not json", home=daemon)
    assert bad.returncode == 2, bad.stderr  # malformed input, as every command's (SPEC 8)
    assert "gain" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    missing = flow("param", "delete", "refuse", "tuner", "nope", home=daemon)
    assert missing.returncode == 1, missing.stderr  # a failed lookup, as `param get`'s
    assert "no parameter 'nope'" in missing.stderr
    # a node that is not there is a failed lookup, exit 1, as `flow node info` says it
    nobody = flow("param", "set", "refuse", "nope", "gain", "1", home=daemon)
    assert nobody.returncode == 1, nobody.stderr
    assert "no node 'nope'" in nobody.stderr
    assert len(nobody.stderr.strip().splitlines()) == 1, nobody.stderr


def test_a_node_that_does_not_answer_in_time_keeps_nothing(daemon: Path, tmp_path: Path) -> None:
    log = start_tuner(daemon, tmp_path, "busy")
    # handling `block` keeps the node away from its next event until the test unblocks it
    # (not for a fixed time a slow CLI start could outlast); its own answer comes when the
    # node is back (a long timeout: a loaded machine adds start-up time)
    argv = [sys.executable, "-m", "cli", "param", "set", "busy", "tuner", "block", "1",
            "--timeout", "30s"]  # fmt: skip
    blocking = subprocess.Popen(
        argv, env=flow_env(daemon), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    wait_for(lambda: bool(entries(log, "param")), "the node handling `block`")
    late = flow("param", "set", "busy", "tuner", "gain", "7", "--timeout", "0.5s", home=daemon)
    (tmp_path / "unblock").touch()  # the node comes back only once `late` has given up
    _, err = blocking.communicate(timeout=BOUND_S)
    assert blocking.returncode == 0, err
    assert late.returncode != 0
    assert "did not answer within 0.5 s" in late.stderr, late.stderr
    for bad in ("0", "61s"):  # no wait at all, or longer than the daemon waits: refused
        refused = flow("param", "set", "busy", "tuner", "gain", "7", "--timeout", bad,
                       home=daemon)  # fmt: skip
        assert refused.returncode == 2, refused.stdout
        assert "at most 60 s" in refused.stderr
    # the node reads the change after the daemon gave up: dropped unseen, never applied
    assert flow("param", "set", "busy", "tuner", "mode", '"slow"', home=daemon).returncode == 0
    assert param_list(daemon, "busy")["gain"] == 1.0
    assert all(e["param"] != "gain" for e in entries(log, "param"))
    assert entries(log, "param")[-1]["params"]["gain"] == 1.0


def test_values_survive_a_restart_and_a_stopped_node_refuses(daemon: Path, tmp_path: Path) -> None:
    log = start_tuner(daemon, tmp_path, "keep")
    assert flow("param", "set", "keep", "tuner", "gain", "3", home=daemon).returncode == 0
    assert flow("param", "delete", "keep", "tuner", "mode", home=daemon).returncode == 0
    restarted = flow("node", "restart", "keep", "tuner", "--grace", "2", home=daemon)
    assert restarted.returncode == 0, restarted.stderr
    wait_for(lambda: len(entries(log, "start")) == 2, "the second generation's first line")
    assert entries(log, "start")[-1] == {
        "start": {"gain": 3, "limits": {"low": 0, "high": [1, 2]}}
    }
    stopped = flow("node", "stop", "keep", "tuner", "--grace", "2", home=daemon)
    assert stopped.returncode == 0, stopped.stderr
    refused = flow("param", "set", "keep", "tuner", "gain", "4", home=daemon)
    assert refused.returncode != 0
    assert "not running" in refused.stderr, refused.stderr
    assert param_list(daemon, "keep")["gain"] == 3
    process = flow("param", "set", "keep", "idle", "gain", "4", home=daemon)
    assert process.returncode == 1  # not malformed input: a node that cannot take one
    assert "not an SDK node" in process.stderr, process.stderr


def test_a_node_that_dies_before_answering_fails_the_set_at_once(
    daemon: Path, tmp_path: Path
) -> None:
    log = start_tuner(daemon, tmp_path, "dies")
    # a long timeout: the request must end with the node's exit, not with the wait
    done = flow("param", "set", "dies", "tuner", "crash", "1", "--timeout", "50s", home=daemon)
    assert done.returncode == 1, done.stderr
    assert "node tuner exited (code 1) before it took the value" in done.stderr, done.stderr
    assert "did not answer" not in done.stderr
    assert entries(log, "param")[-1]["param"] == "crash"


@pytest.mark.parametrize("closed_by", ["with", "exit", "exit-exec"])
def test_a_node_that_raises_handling_a_change_refuses_it(
    daemon: Path, tmp_path: Path, closed_by: str
) -> None:
    """The node raised out of its PARAM event (out of `with Node()`, or out of the script,
    the interpreter's exit closing it): not taken, and the command says what it raised."""
    env = "      NO_WITH: '1'\n" if closed_by.startswith("exit") else ""
    env += "      FLOW_SPAWN: exec\n" if closed_by == "exit-exec" else ""  # not forked
    log = start_tuner(daemon, tmp_path, "raises", env)
    done = flow("param", "set", "raises", "tuner", "raise", "5", home=daemon)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the node raised ValueError: cannot apply raise=5" in done.stderr, done.stderr
    assert "taken" not in done.stdout + done.stderr
    assert entries(log, "param")[-1]["param"] == "raise"
    wait_for(lambda: flow("list", home=daemon).returncode == 0, "flow list")
    listed = flow("param", "list", "raises", "tuner", "--json", home=daemon)
    assert "raise" not in listed.stdout, listed.stdout  # the daemon kept nothing
