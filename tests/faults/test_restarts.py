"""Restart policies (SPEC 2, 5): growing delays, a bounded count, siblings untouched."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

from helpers import NODES, flow


def test_row09_crash_loop_under_on_failure_ends_failed_and_stays(
    daemon: Path, tmp_path: Path
) -> None:
    crashes, sibling = tmp_path / "crashes", tmp_path / "sibling"
    yml = tmp_path / "loop.yml"
    yml.write_text(
        f"""
nodes:
  - id: crasher
    path: {NODES}/crasher.py
    env: {{SPAWN_FILE: {crashes}}}
    restart_policy: on-failure
    max_restarts: 4
    restart_window: 5
    restart_delay: 0.2
    max_restart_delay: 2
    inputs:
      tick: flow/timer/millis/100
  - id: sibling
    path: {NODES}/spawncount.py
    env: {{SPAWN_FILE: {sibling}}}
    inputs:
      tick: flow/timer/millis/100
"""
    )
    assert flow("start", str(yml), "--detach", "--name", "loop", home=daemon).returncode == 0
    deadline = time.monotonic() + 30
    info: dict = {}
    while time.monotonic() < deadline:
        runs = [json.loads(x) for x in flow("list", "--json", home=daemon).stdout.splitlines()]
        info = {n["id"]: n for n in runs[0]["nodes"]} if runs else {}
        if info and info["crasher"]["status"] == "failed":
            break
        time.sleep(0.2)
    assert info["crasher"]["status"] == "failed", info
    assert info["sibling"]["status"] == "running"
    assert info["crasher"]["restarts"] == 4
    assert info["crasher"]["generation"] == 5
    logged = flow("logs", "loop", "crasher", home=daemon).stdout
    assert logged.count("crasher: crashing") == 5
    assert logged.count("WARNING flow: restarted as generation ") == 4, logged
    starts = [line.split() for line in crashes.read_text().splitlines()]
    assert [count for count, _ in starts] == ["0", "1", "2", "3", "4"]  # restart_count()
    times = [float(stamp) for _, stamp in starts]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == sorted(gaps), gaps  # the delays grew: 0.2, 0.4, 0.8, 1.6 s
    time.sleep(10.5)  # two further restart windows (the row asks 2x): no more spawns once failed
    assert len(crashes.read_text().splitlines()) == 5
    assert sibling.read_text().split() == ["start"]
    assert info["sibling"]["generation"] == 1
    assert info["sibling"]["status"] == "running"
    events = flow("stop", "loop", home=daemon)
    assert events.returncode == 0
    assert "failed" in events.stdout  # a node that gave up fails the run, stop or not
    final = [
        json.loads(x) for x in flow("list", "--all", "--json", home=daemon).stdout.splitlines()
    ]
    assert final[0]["status"] == "failed"
    assert len(crashes.read_text().splitlines()) == 5  # and the stop spawned nothing"


def test_always_restarts_a_clean_exit_but_not_a_stop(daemon: Path, tmp_path: Path) -> None:
    spawns = tmp_path / "spawns"
    yml = tmp_path / "always.yml"
    yml.write_text(
        f"""
nodes:
  - id: quitter
    path: {NODES}/counter.py
    env: {{COUNT: 2, SPAWN_FILE: {spawns}}}
    restart_policy: always
    max_restarts: 2
    restart_delay: 0.05
    inputs:
      tick: flow/timer/millis/20
    outputs: [count]
"""
    )
    started = flow("start", str(yml), "--attach", "--name", "always", home=daemon, timeout=60)
    logs = flow("logs", "always", "quitter", home=daemon).stdout
    assert logs.count("counter sent 2") == 3, logs  # the first run and two restarts
    # where one generation ends and the next begins, in the attached output and the log
    for restart in ("generation 2 (generation 1 exited 0)", "generation 3 (generation 2 exited 0)"):
        assert f"INFO flow: restarted as {restart}" in started.stdout, started.stdout
        assert f"INFO flow: restarted as {restart}" in logs, logs
    assert started.returncode == 1  # more than max_restarts within the window: failed
    # and says why, where the run's ending is printed: its last exit was a clean one
    said = started.stdout + started.stderr
    assert "gave up after 2 restarts within 60s (max_restarts)" in said, said
