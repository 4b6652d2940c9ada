"""`flow param` on the coordinator for a node placed on another machine (docs/parameters.md):
the change goes over the relayed node channel and the node's answer comes back the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import NODES, records, wait_for
from netns import Machine, connected


def _entries(log: Path, kind: str) -> list[dict[str, Any]]:
    return [entry for entry in records(log) if kind in entry] if log.exists() else []


def _listed(a: Machine, run: str) -> dict[str, Any]:
    done = a.flow("param", "list", run, "tuner", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def test_param_set_reject_and_restart_of_a_node_on_another_machine(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a = cluster["a"]
    tmp_path.chmod(0o777)  # b's node writes its log here (both namespaces share the files)
    log = tmp_path / "params.jsonl"
    (tmp_path / "tune.yml").write_text(f"""
name: tune
nodes:
  - id: tuner
    path: {NODES}/tuner.py
    deploy: {{machine: b}}
    params:
      gain: 1.0
      mode: fast
    env:
      PARAM_LOG: {log}
  - id: idle
    path: sleep  # keeps the run going while tuner restarts
    args: "3600"  # on past every step of the test, however slow; its stop ends it
""")
    wait_for(lambda: connected(a, "b"), "b connected")
    started = a.flow("start", "--detach", str(tmp_path / "tune.yml"))
    assert started.returncode == 0, started.stdout + started.stderr
    # the YAML's values reach the node at its start, on its own machine
    wait_for(lambda: bool(_entries(log, "start")), "the tuner's first line")
    assert _entries(log, "start")[0] == {"start": {"gain": 1.0, "mode": "fast"}}

    done = a.flow("param", "set", "tune", "tuner", "gain", "2.5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "taken by the node" in done.stdout, done.stdout
    assert _entries(log, "param")[-1] == {
        "param": "gain", "value": 2.5, "params": {"gain": 2.5, "mode": "fast"}
    }
    assert _listed(a, "tune")["gain"] == 2.5

    # the node refuses: the command fails with its reason, nothing is stored
    refused = a.flow("param", "set", "tune", "tuner", "gain", "-1")
    assert refused.returncode != 0
    assert "refused by the node: gain must be >= 0" in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert _listed(a, "tune")["gain"] == 2.5
    # its validator refuses before any event
    locked = a.flow("param", "set", "tune", "tuner", "locked", "true")
    assert "locked is read-only" in locked.stderr, locked.stderr
    assert locked.returncode != 0

    assert a.flow("param", "delete", "tune", "tuner", "mode").returncode == 0
    restarted = a.flow("node", "restart", "tune", "tuner", "--grace", "2")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    # the restarted node on b gets the stored values, not the YAML's
    wait_for(lambda: len(_entries(log, "start")) == 2, "the second generation's first line")
    assert _entries(log, "start")[-1] == {"start": {"gain": 2.5}}
    again = a.flow("param", "set", "tune", "tuner", "gain", "4")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _entries(log, "param")[-1]["params"] == {"gain": 4}
    assert a.flow("stop", "tune").returncode == 0
