"""The core lifecycle as a user drives it: run, up, start, list, logs, stop, down (SPEC 5, 8)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import NODES, REPO, flow


def dataflow(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dataflow.yml"
    path.write_text(text.replace("NODES", str(NODES)))
    return path


def run_info(home: Path, name: str) -> dict:
    done = flow("list", "--all", "--json", home=home)
    assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    matching = [r for r in runs if r["name"] == name]
    assert matching, done.stdout
    return matching[-1]


def wait_for_log(home: Path, run: str, node: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = flow("logs", run, node, home=home)
        if text in done.stdout:
            return done.stdout
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in {node}'s log:\n{done.stdout}{done.stderr}")


def test_quickstart_runs_in_the_foreground(flow_home: Path) -> None:
    done = flow("run", str(REPO / "dataflows/quickstart/dataflow.yml"), home=flow_home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sink received 2" in done.stdout
    assert "sink received 100" in done.stdout
    assert "succeeded" in done.stdout


def test_up_start_list_logs_stop_down(daemon: Path, tmp_path: Path) -> None:
    # the quickstart, counting long enough that a loaded machine's slow CLI steps cannot
    # see it end by itself (5 s) before `flow stop`
    folder = REPO / "dataflows/quickstart"
    text = (folder / "dataflow.yml").read_text()
    for script in ("source.py", "transform.py", "sink.py"):
        text = text.replace(f"path: {script}", f"path: {folder / script}")
    counter = "outputs:\n      - counter\n"
    text = text.replace(counter, counter + "    env: {COUNT: '100000'}\n")
    yml = tmp_path / "dataflow.yml"
    yml.write_text(text)
    started = flow("start", str(yml), "--detach", "--name", "demo", home=daemon)
    assert started.returncode == 0, started.stderr
    wait_for_log(daemon, "demo", "sink", "sink received")
    listed = flow("list", home=daemon)
    assert "demo" in listed.stdout
    assert "running" in listed.stdout
    info = run_info(daemon, "demo")
    assert info["status"] == "running"
    assert {n["id"] for n in info["nodes"]} == {"source", "transform", "sink"}
    tail = flow("logs", "demo", "sink", "--tail", "5", home=daemon)
    lines = [line for line in tail.stdout.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 5, tail.stdout
    assert all("sink received" in line for line in lines), tail.stdout
    stopped = flow("stop", "demo", home=daemon)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in flow("list", "--all", home=daemon).stdout
    assert run_info(daemon, "demo")["status"] == "stopped"
    assert flow("down", home=daemon).returncode == 0
    # the conftest fixture then proves no flow or node process is left


def test_stubborn_node_is_killed_after_grace(daemon: Path, tmp_path: Path) -> None:
    yml = dataflow(
        tmp_path,
        """
nodes:
  - id: stubborn
    path: NODES/stubborn.py
    inputs:
      tick: flow/timer/millis/100
""",
    )
    assert flow("start", str(yml), "--detach", "--name", "mule", home=daemon).returncode == 0
    wait_for_log(daemon, "mule", "stubborn", "stubborn: running")
    grace = 1.0
    began = time.monotonic()
    stopped = flow("stop", "mule", "--grace", str(grace), home=daemon)
    elapsed = time.monotonic() - began
    assert stopped.returncode == 0, stopped.stderr
    # SPEC 5: STOP, grace, SIGTERM, grace / 2, SIGKILL; 6 s more for the CLI's own start
    # and exit on a loaded machine, still half the 15 s the default 10 s grace would take
    assert elapsed < grace * 1.5 + 6, elapsed
    node = run_info(daemon, "mule")["nodes"][0]
    assert node["status"] == "killed"
    assert node["signal"] == "SIGKILL"


def test_failing_node_fails_the_run_and_closes_downstream(daemon: Path, tmp_path: Path) -> None:
    yml = dataflow(
        tmp_path,
        """
nodes:
  - id: counter
    path: NODES/counter.py
    env: {COUNT: 40}
    inputs:
      tick: flow/timer/millis/50
    outputs: [count]
  - id: failer
    path: NODES/failer.py
    env: {FAIL_AFTER: 3, FAIL_CODE: 3}
    inputs:
      in: counter/count
    outputs: [out]
  - id: after
    path: NODES/seqsink.py
    inputs:
      data: failer/out
  - id: beside
    path: NODES/seqsink.py
    inputs:
      data: {source: counter/count, queue_size: 1000}  # a starved CPU must not drop
""",
    )
    started = flow("start", str(yml), "--attach", "--name", "broken", home=daemon, timeout=60)
    assert started.returncode == 1, started.stdout + started.stderr
    shown = started.stdout + started.stderr
    assert "exited 3" in shown
    assert "failer: giving up after 3 values" in shown
    listed = flow("list", "--all", home=daemon)
    assert "failed" in listed.stdout
    assert "failer: giving up after 3 values" in listed.stdout + listed.stderr
    info = run_info(daemon, "broken")
    assert info["status"] == "failed"
    nodes = {n["id"]: n for n in info["nodes"]}
    assert nodes["failer"]["exit_code"] == 3
    assert "failer: giving up after 3 values" in nodes["failer"]["stderr_tail"]
    assert nodes["counter"]["status"] == "succeeded"
    # downstream of the failure: its input closed, then it stopped by itself
    after = flow("logs", "broken", "after", home=daemon).stdout
    assert "closed data" in after
    assert "stop ALL_INPUTS_CLOSED" in after
    # the rest of the graph kept running: every value reached the other branch
    beside = flow("logs", "broken", "beside", home=daemon).stdout
    assert "summary received=40 gaps=0 repeats=0" in beside
