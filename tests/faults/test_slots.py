"""A node belongs to its slot (P1-P3, row 31) and a signal from outside is its own (C5)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from helpers import NODES, flow
from procs import GONE_S, alive, node_processes, wait_gone


def nodes_of(home: Path, name: str) -> dict[str, dict[str, Any]]:
    runs = [json.loads(x) for x in flow("list", "--all", "--json", home=home).stdout.splitlines()]
    return {n["id"]: n for n in [r for r in runs if r["name"] == name][-1]["nodes"]}


def spawns(folder: Path) -> dict[str, int]:
    return {p.name: len(p.read_text().splitlines()) for p in sorted(folder.iterdir())}


def test_p3_b_killed_20_times_restarts_only_in_its_slot(daemon: Path, tmp_path: Path) -> None:
    counts = tmp_path / "spawns"
    counts.mkdir()
    yml = tmp_path / "four.yml"
    yml.write_text(
        f"""
nodes:
  - id: a
    path: {NODES}/counter.py
    env: {{SPAWN_FILE: {counts / "a"}}}
    inputs:
      tick: flow/timer/millis/20
    outputs: [count]
  - id: b
    path: {NODES}/forward.py
    env: {{SPAWN_FILE: {counts / "b"}}}
    restart_policy: on-failure
    max_restarts: 25
    restart_delay: 0.05
    max_restart_delay: 0.05
    inputs:
      in: {{source: a/count, queue_size: 1000}}
    outputs: [out]
  - id: c
    path: {NODES}/recorder.py
    env: {{SPAWN_FILE: {counts / "c"}, VALUES_FILE: {tmp_path / "values"}}}
    inputs:
      data: {{source: b/out, queue_size: 1000}}
  - id: d
    path: {NODES}/spawncount.py
    env: {{SPAWN_FILE: {counts / "d"}}}
    inputs:
      tick: flow/timer/millis/100
"""
    )
    assert flow("start", str(yml), "--detach", "--name", "four", home=daemon).returncode == 0
    run_id = json.loads(flow("list", "--json", home=daemon).stdout.splitlines()[-1])["id"]
    rng = random.Random(31)
    killed: set[int] = set()
    # a safety bound: each kill waits for a new generation's start (a spawn, an import, a
    # hello), 20 of them, which a loaded machine can stretch to 2 s each and more
    deadline = time.monotonic() + 120
    while len(killed) < 20:
        assert time.monotonic() < deadline, f"only {len(killed)} kills"
        live = node_processes(run_id)
        assert all(len(p) == 1 for p in live.values()), live  # never two per slot
        started = len((counts / "b").read_text().splitlines()) if (counts / "b").exists() else 0
        for pid in live.get("b", []):
            # once this generation has counted its start: one line per spawn, exactly
            if pid not in killed and alive(pid) and started == len(killed) + 1:
                time.sleep(rng.uniform(0.0, 0.3))  # a random moment of its life
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while nodes_of(daemon, "four")["b"]["generation"] < 21 or len(node_processes(run_id)) < 4:
        assert time.monotonic() < deadline, nodes_of(daemon, "four")["b"]
        time.sleep(0.1)
    time.sleep(0.5)
    assert spawns(tmp_path / "spawns") == {"a": 1, "b": 21, "c": 1, "d": 1}
    nodes = nodes_of(daemon, "four")
    assert {n: v["generation"] for n, v in nodes.items()} == {"a": 1, "b": 21, "c": 1, "d": 1}
    assert flow("stop", "four", home=daemon).returncode == 0
    values = [int(v) for v in (tmp_path / "values").read_text().split()]
    assert values == sorted(set(values))  # nothing delivered twice, nothing reordered
    assert not node_processes(run_id)


def test_c5_sigterm_from_outside_follows_the_nodes_own_policy(daemon: Path, tmp_path: Path) -> None:
    counts = tmp_path / "spawns"
    counts.mkdir()
    yml = tmp_path / "term.yml"
    node = """
  - id: {id}
    path: {nodes}/spawncount.py
    env: {{SPAWN_FILE: {file}}}
    restart_policy: {policy}
    restart_delay: 0.05
    inputs:
      tick: flow/timer/millis/100
"""
    yml.write_text(
        "nodes:"
        + "".join(
            node.format(id=i, nodes=NODES, file=counts / i, policy=p)
            for i, p in (("again", "on-failure"), ("once", "never"), ("other", "never"))
        )
    )
    assert flow("start", str(yml), "--detach", "--name", "term", home=daemon).returncode == 0
    deadline = time.monotonic() + 10
    while len(list(counts.iterdir())) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = nodes_of(daemon, "term")
    for victim in ("again", "once"):
        os.kill(before[victim]["pid"], signal.SIGTERM)
    assert not wait_gone([before["again"]["pid"], before["once"]["pid"]], GONE_S)
    deadline = time.monotonic() + 10
    while nodes_of(daemon, "term")["again"]["status"] != "running" or len(spawns(counts)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    after = nodes_of(daemon, "term")
    assert after["once"]["status"] == "failed"
    assert after["once"]["signal"] == "SIGTERM"
    assert after["again"]["generation"] == 2  # restarted by its policy, in its slot
    assert after["other"]["pid"] == before["other"]["pid"]  # the run was not re-launched
    assert spawns(counts) == {"again": 2, "once": 1, "other": 1}
    stopped = flow("stop", "term", home=daemon)
    assert stopped.returncode == 0
    assert "failed" in stopped.stdout  # `once` failed by a signal flow did not send
