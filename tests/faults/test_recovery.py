"""Recovery never re-runs an ended node (the Cronicle lesson: rows 12, 13; C3, C4, C6, C7).

A run whose source and sink have finished and one of whose nodes failed on its own is still
running (one node lives on) when the daemon dies. Recovery brings back that one node only:
one line per spawn in a file, the sink's values 1..50 exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import BOUND_S, NODES, daemon_down, flow
from procs import daemon_pid, node_processes, wait_gone

from daemon.store import Store
from node_sdk import paths

GRACE_S = 3.0  # FLOW_DAEMON_GRACE: how long nodes outlive a dead daemon
ENV = {"FLOW_DAEMON_GRACE": f"{GRACE_S:g}s"}
COUNT = 50


def graph(tmp_path: Path) -> Path:
    spawns = tmp_path / "spawns"
    spawns.mkdir()
    yml = tmp_path / "cronicle.yml"
    yml.write_text(
        f"""
nodes:
  - id: source
    path: {NODES}/counter.py
    env: {{COUNT: {COUNT}, SPAWN_FILE: {spawns / "source"}}}
    inputs:
      tick: flow/timer/millis/10
    outputs: [count]
  - id: sink
    path: {NODES}/recorder.py
    env: {{SPAWN_FILE: {spawns / "sink"}, VALUES_FILE: {tmp_path / "values"}}}
    inputs:
      data: {{source: source/count, queue_size: 1000}}
  - id: crasher
    path: {NODES}/crasher.py
    env: {{SPAWN_FILE: {spawns / "crasher"}}}
    inputs:
      tick: flow/timer/millis/100
  - id: steady
    path: {NODES}/spawncount.py
    env: {{SPAWN_FILE: {spawns / "steady"}}}
    inputs:
      tick: flow/timer/millis/100
"""
    )
    return yml


def run_info(home: Path, name: str) -> dict[str, Any]:
    done = flow("list", "--all", "--json", home=home)
    assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [r for r in runs if r["name"] == name][-1]


def stored_run(home: Path, run_id: str) -> dict[str, Any]:
    """The run as the state store has it while no daemon runs."""
    store = Store.open(paths.state_db(home))
    try:
        info = store.run(run_id)
    finally:
        store.close()
    assert info is not None
    return info


def statuses(info: dict[str, Any]) -> dict[str, str]:
    return {n["id"]: n["status"] for n in info["nodes"]}


def spawn_counts(tmp_path: Path) -> dict[str, int]:
    folder = tmp_path / "spawns"
    return {p.name: len(p.read_text().splitlines()) for p in sorted(folder.iterdir())}


def assert_spawns(tmp_path: Path, expected: dict[str, int]) -> None:
    """The spawn counts once the recovered `steady` has written its line: `flow up` returns
    once its process is spawned, and a loaded machine may take seconds to run it that far."""
    wait_until(
        lambda: spawn_counts(tmp_path)["steady"] >= expected["steady"],
        BOUND_S,
        f"steady never started again: {spawn_counts(tmp_path)}",
    )
    assert spawn_counts(tmp_path) == expected


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


ENDED = {"source": "succeeded", "sink": "succeeded", "crasher": "failed", "steady": "running"}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["row12", "row13"])
def test_c6_recovery_restarts_only_the_nodes_that_had_not_ended(
    flow_home: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    try:
        recover_after(flow_home, tmp_path, sig)
    finally:
        daemon_down(flow_home)


def recover_after(flow_home: Path, tmp_path: Path, sig: signal.Signals) -> None:
    assert flow("up", home=flow_home, env_extra=ENV).returncode == 0
    yml = graph(tmp_path)
    assert flow("start", str(yml), "--detach", "--name", "cron", home=flow_home).returncode == 0
    wait_until(lambda: statuses(run_info(flow_home, "cron")) == ENDED, 15, "nodes never ended")
    before = run_info(flow_home, "cron")
    steady_pid = next(n["pid"] for n in before["nodes"] if n["id"] == "steady")
    daemon = daemon_pid(flow_home)
    os.kill(daemon, sig)
    # SIGKILL: the run's keeper stops its nodes past the grace; SIGTERM: the daemon does
    assert not wait_gone([steady_pid], GRACE_S + 12), "the living node outlived the daemon"
    if sig is signal.SIGTERM:  # C4: the marker says the daemon stopped it, to come back
        # written once every node is gone, before the daemon exits: read after its exit
        assert not wait_gone([daemon], GRACE_S + 12), "the daemon outlived its SIGTERM"
        recorded = stored_run(flow_home, before["id"])
        assert recorded["status"] == "interrupted"
        assert statuses(recorded) == {**ENDED, "steady": "interrupted"}
        listed = flow("list", home=flow_home)  # no daemon: the store, the run waiting in it
        assert "cron" in listed.stdout, listed.stdout
        assert "interrupted" in listed.stdout, listed.stdout
        assert "1 daemon run(s) wait for the next flow up" in listed.stderr, listed.stderr
    assert flow("up", home=flow_home, env_extra=ENV).returncode == 0
    seen: dict[str, set[int]] = {}
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # sampled every 50 ms: at most one per node
        for node, live in node_processes(before["id"]).items():
            assert len(live) == 1, f"{node} has {len(live)} live processes"
            seen.setdefault(node, set()).update(live)
        time.sleep(0.05)
    assert set(seen) == {"steady"}, seen  # nothing that had ended came back
    after = run_info(flow_home, "cron")
    assert after["recovered"] is True
    assert after["status"] == "running"
    assert statuses(after) == ENDED
    generations = {n["id"]: n["generation"] for n in after["nodes"]}
    assert generations == {"source": 1, "sink": 1, "crasher": 1, "steady": 2}
    assert_spawns(tmp_path, {"crasher": 1, "sink": 1, "source": 1, "steady": 2})
    values = (tmp_path / "values").read_text().split()
    assert values == [str(i) for i in range(1, COUNT + 1)]  # 1..50 exactly once
    stopped = flow("stop", "cron", home=flow_home)
    assert stopped.returncode == 0, stopped.stderr
    assert run_info(flow_home, "cron")["status"] == "failed"  # the crash still counts
    assert flow("down", home=flow_home).returncode == 0
    assert spawn_counts(tmp_path)["steady"] == 2


def test_c6_an_ended_run_is_never_recovered(flow_home: Path, tmp_path: Path) -> None:
    try:
        stop_then_crash(flow_home, tmp_path)
    finally:
        daemon_down(flow_home)


def stop_then_crash(flow_home: Path, tmp_path: Path) -> None:
    assert flow("up", home=flow_home, env_extra=ENV).returncode == 0
    yml = graph(tmp_path)
    assert flow("start", str(yml), "--detach", "--name", "done", home=flow_home).returncode == 0
    wait_until(lambda: statuses(run_info(flow_home, "done")) == ENDED, 15, "nodes never ended")
    assert flow("stop", "done", home=flow_home).returncode == 0
    os.kill(daemon_pid(flow_home), signal.SIGKILL)
    time.sleep(GRACE_S + 0.5)
    assert flow("up", home=flow_home, env_extra=ENV).returncode == 0
    time.sleep(1.0)
    assert run_info(flow_home, "done")["status"] == "failed"
    assert not node_processes(run_info(flow_home, "done")["id"])
    assert spawn_counts(tmp_path) == {"crasher": 1, "sink": 1, "source": 1, "steady": 1}
    assert flow("down", home=flow_home).returncode == 0


def test_c6_a_node_that_ended_while_no_daemon_listened_is_not_run_again(
    flow_home: Path, tmp_path: Path
) -> None:
    try:
        end_while_away(flow_home, tmp_path)
    finally:
        daemon_down(flow_home)


def end_while_away(flow_home: Path, tmp_path: Path) -> None:
    # long enough for the source to end and close with no daemon to say goodbye to
    grace = 8.0
    env = {"FLOW_DAEMON_GRACE": f"{grace:g}s"}
    assert flow("up", home=flow_home, env_extra=env).returncode == 0
    count = 15  # at 100 ms: 1.5 s at least, and on until the daemon is dead (UNTIL_FILE)
    end = tmp_path / "end"
    yml = graph(tmp_path)
    yml.write_text(
        yml.read_text()
        .replace(f"COUNT: {COUNT}, ", f"COUNT: {count}, UNTIL_FILE: {end}, ")
        .replace("millis/10\n", "millis/100\n")
    )
    assert flow("start", str(yml), "--detach", "--name", "away", home=flow_home).returncode == 0
    wait_until(lambda: (tmp_path / "values").exists(), 10, "the sink never received")
    info = run_info(flow_home, "away")
    killed = daemon_pid(flow_home)
    os.kill(killed, signal.SIGKILL)  # the source is still counting: it waits for `end`
    assert not wait_gone([killed], 10), "the daemon outlived SIGKILL"
    end.touch()  # the source ends now, with no daemon to say goodbye to
    pids = [n["pid"] for n in info["nodes"]]
    assert not wait_gone(pids, grace + 12), "nodes outlived the daemon's grace"
    assert statuses(stored_run(flow_home, info["id"]))["source"] == "running"  # as it died
    assert flow("up", home=flow_home, env_extra=env).returncode == 0
    time.sleep(1.0)
    after = run_info(flow_home, "away")
    assert statuses(after) == ENDED  # the keeper wrote down who ended by itself
    assert_spawns(tmp_path, {"crasher": 1, "sink": 1, "source": 1, "steady": 2})
    source_log = flow("logs", "away", "source", home=flow_home).stdout
    sent = [int(n) for n in re.findall(r"counter sent (\d+)", source_log)]
    assert sent, source_log[-500:]
    assert sent[0] >= count, source_log[-500:]
    values = (tmp_path / "values").read_text().split()
    assert values == [str(i) for i in range(1, sent[0] + 1)]  # each once, none lost
    assert set(node_processes(info["id"])) == {"steady"}


def test_c7_a_run_started_from_its_saved_copy_recovers_the_same(
    flow_home: Path, tmp_path: Path
) -> None:
    try:
        restart_then_crash(flow_home, tmp_path)
    finally:
        daemon_down(flow_home)


def restart_then_crash(flow_home: Path, tmp_path: Path) -> None:
    assert flow("up", home=flow_home, env_extra=ENV).returncode == 0
    yml = graph(tmp_path)
    assert flow("start", str(yml), "--detach", "--name", "saved", home=flow_home).returncode == 0
    wait_until(lambda: statuses(run_info(flow_home, "saved")) == ENDED, 15, "nodes never ended")
    first = run_info(flow_home, "saved")["id"]
    yml.unlink()  # from here on only the run's own copy of the file exists
    for spawned in (tmp_path / "spawns").iterdir():
        spawned.unlink()
    (tmp_path / "values").unlink()
    restarted = flow("restart", "saved", "--stored", home=flow_home)  # the saved copy
    assert restarted.returncode == 0, restarted.stderr
    wait_until(
        lambda: (
            run_info(flow_home, "saved")["id"] != first
            and statuses(run_info(flow_home, "saved")) == ENDED
        ),
        15,
        "the restarted run's nodes never ended",
    )
    info = run_info(flow_home, "saved")
    steady = next(n["pid"] for n in info["nodes"] if n["id"] == "steady")
    os.kill(daemon_pid(flow_home), signal.SIGKILL)
    assert not wait_gone([steady], GRACE_S + 12)
    assert flow("up", home=flow_home, env_extra=ENV).returncode == 0
    time.sleep(1.0)
    after = run_info(flow_home, "saved")
    assert after["id"] == info["id"]
    assert after["recovered"] is True
    assert statuses(after) == ENDED
    assert_spawns(tmp_path, {"crasher": 1, "sink": 1, "source": 1, "steady": 2})
    values = (tmp_path / "values").read_text().split()
    assert values == [str(i) for i in range(1, COUNT + 1)]


def test_c3_adopting_within_the_grace_never_restarts_a_node_that_gave_up(
    flow_home: Path, tmp_path: Path
) -> None:
    try:
        adopt_after_give_up(flow_home, tmp_path)
    finally:
        daemon_down(flow_home)


def adopt_after_give_up(flow_home: Path, tmp_path: Path) -> None:
    # a grace the new daemon comes back within however slowly a loaded machine runs `flow
    # up` (it has taken over 5 s): with 3 s the keeper stopped `steady`, which came back new
    adopt = {"FLOW_DAEMON_GRACE": "60s"}
    assert flow("up", home=flow_home, env_extra=adopt).returncode == 0
    yml = graph(tmp_path)
    yml.write_text(  # the crasher may come back once, then it has given up for good
        yml.read_text().replace(
            f"{NODES}/crasher.py\n",
            f"{NODES}/crasher.py\n    restart_policy: on-failure\n    max_restarts: 1\n"
            "    restart_window: 60\n    restart_delay: 0.05\n",
        )
    )
    assert flow("start", str(yml), "--detach", "--name", "adopt", home=flow_home).returncode == 0
    wait_until(lambda: statuses(run_info(flow_home, "adopt")) == ENDED, 15, "nodes never ended")
    before = run_info(flow_home, "adopt")
    assert spawn_counts(tmp_path)["crasher"] == 2
    os.kill(daemon_pid(flow_home), signal.SIGKILL)
    time.sleep(0.5)  # well within the grace: the keeper and the living node wait
    assert flow("up", home=flow_home, env_extra=adopt).returncode == 0
    time.sleep(1.5)  # a restart delay's worth and more
    after = run_info(flow_home, "adopt")
    assert statuses(after) == ENDED
    pids = {n["id"]: n["pid"] for n in after["nodes"]}
    assert pids["steady"] == next(n["pid"] for n in before["nodes"] if n["id"] == "steady")
    assert spawn_counts(tmp_path) == {"crasher": 2, "sink": 1, "source": 1, "steady": 1}


def test_a_removed_node_stays_removed_after_recovery(flow_home: Path, tmp_path: Path) -> None:
    try:
        remove_then_crash(flow_home, tmp_path)
    finally:
        daemon_down(flow_home)


def remove_then_crash(flow_home: Path, tmp_path: Path) -> None:
    assert flow("up", home=flow_home, env_extra=ENV).returncode == 0
    yml = graph(tmp_path)
    spare = tmp_path / "spawns" / "spare"
    yml.write_text(
        yml.read_text() + f"  - id: spare\n    path: {NODES}/spawncount.py\n"
        f"    env: {{SPAWN_FILE: {spare}}}\n"
    )
    assert flow("start", str(yml), "--detach", "--name", "cut", home=flow_home).returncode == 0
    wait_until(lambda: spare.exists(), BOUND_S, "spare never started")
    assert flow("node", "remove", "cut", "spare", home=flow_home).returncode == 0
    steady = next(n["pid"] for n in run_info(flow_home, "cut")["nodes"] if n["id"] == "steady")
    os.kill(daemon_pid(flow_home), signal.SIGKILL)
    assert not wait_gone([steady], GRACE_S + 12)
    assert flow("up", home=flow_home, env_extra=ENV).returncode == 0
    wait_until(lambda: spawn_counts(tmp_path)["steady"] == 2, BOUND_S, "steady never came back")
    listed = flow("node", "list", "cut", "--json", home=flow_home).stdout.splitlines()
    assert "spare" not in [json.loads(line)["id"] for line in listed]
    again = flow("node", "remove", "cut", "spare", home=flow_home)
    assert again.returncode == 1
    assert "no node 'spare'" in again.stderr
    assert spawn_counts(tmp_path)["spare"] == 1  # never started again
