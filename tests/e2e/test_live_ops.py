"""Live operations on a running dataflow: topics, top, and graph edits (SPEC 8)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from helpers import NODES, flow, flow_env, stream_graph

from node_sdk import paths

GRAPH = (
    stream_graph(tick_ms=10)
    + f"""  - id: listener
    path: {NODES}/listener.py
    inputs:
      tick: flow/timer/secs/1
"""
)


def start(home: Path, tmp_path: Path, name: str) -> None:
    yml = tmp_path / f"{name}.yml"
    yml.write_text(GRAPH)
    assert flow("start", str(yml), "--detach", "--name", name, home=home).returncode == 0
    time.sleep(0.5)


def rate_of(home: Path, run: str) -> float:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        node = json.loads(flow("node", "info", run, "counter", "--json", home=home).stdout)
        rate = ((node.get("stats") or {}).get("rates") or {}).get("out:count")
        if rate:
            return float(rate)
        time.sleep(0.3)
    raise AssertionError("the counter never reported a rate")


def test_topic_list_echo_and_hz(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "topics")
    listed = flow("topic", "list", "topics", home=daemon)
    assert "counter/count" in listed.stdout
    assert "sink/data" in listed.stdout
    echo = flow("topic", "echo", "topics", "counter/count", "--count", "5", home=daemon)
    assert echo.returncode == 0, echo.stderr
    lines = [line for line in echo.stdout.splitlines() if line.startswith("seq ")]
    assert len(lines) == 5
    assert all("'" in line for line in lines)  # str payloads shown as strings
    hz = flow("topic", "hz", "topics", "counter/count", "--duration", "3", home=daemon)
    assert hz.returncode == 0, hz.stderr
    assert "rate " in hz.stdout
    bad = flow("topic", "echo", "topics", "counter/nope", "--count", "1", home=daemon)
    assert bad.returncode == 2
    assert "has no output 'nope'" in bad.stderr
    assert flow("stop", "topics", home=daemon).returncode == 0


def test_slow_echo_does_not_slow_the_sender(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "slow")
    before = rate_of(daemon, "slow")
    # a terminal that reads nothing: echo's stdout pipe fills and it blocks in print
    slow = subprocess.Popen(
        [sys.executable, "-m", "cli", "topic", "echo", "slow", "counter/count"],
        env=flow_env(daemon), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(4)
        during = rate_of(daemon, "slow")
    finally:
        slow.kill()
        slow.wait()
        assert slow.stdout is not None
        slow.stdout.close()
    assert during > before * 0.7, (before, during)  # within noise of its own rate
    # the killed observer's lease runs out, and the daemon removes its socket file
    deadline = time.monotonic() + 10
    while list(paths.socket_dir(daemon).glob("obs-*")):
        assert time.monotonic() < deadline, "the observer's socket file was left behind"
        time.sleep(0.2)
    assert flow("stop", "slow", home=daemon).returncode == 0
    summary = flow("logs", "slow", "sink", home=daemon).stdout.splitlines()[-1]
    assert "gaps=0 repeats=0" in summary


def test_top_once_is_json_with_every_node(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "one")
    start(daemon, tmp_path, "two")
    done = flow("top", "--once", home=daemon)
    assert done.returncode == 0, done.stderr
    snapshot = json.loads(done.stdout)
    seen = {(r["name"], n["id"]) for r in snapshot["runs"] for n in r["nodes"]}
    assert seen == {(r, n) for r in ("one", "two") for n in ("counter", "sink", "listener")}
    for run in snapshot["runs"]:
        for node in run["nodes"]:
            assert node["rss_bytes"], node
            assert node["cpu_percent"] is not None
    assert flow("stop", "--all", home=daemon).returncode == 0


def test_graph_edits(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "edits")
    snippet = tmp_path / "extra.yml"
    snippet.write_text(f"id: extra\npath: {NODES}/listener.py\ninputs:\n  data: counter/count\n")
    added = flow("node", "add", "edits", str(snippet), home=daemon)
    assert added.returncode == 0, added.stderr
    _wait_log(daemon, "edits", "extra", "input data")
    # refused edits leave the run as it was
    dup = flow("node", "add", "edits", str(snippet), home=daemon)
    assert dup.returncode == 2
    assert "duplicate" in dup.stderr.lower()
    ghost = tmp_path / "ghost.yml"
    ghost.write_text(f"id: ghost\npath: {NODES}/listener.py\ninputs:\n  x: nobody/out\n")
    assert flow("node", "add", "edits", str(ghost), home=daemon).returncode == 2
    undeclared = flow("node", "connect", "edits", "counter/nope", "listener/more", home=daemon)
    assert undeclared.returncode == 2
    assert "has no output 'nope'" in undeclared.stderr
    unknown = flow("node", "connect", "edits", "counter/count", "nobody/in", home=daemon)
    assert unknown.returncode == 1
    assert "no node 'nobody'" in unknown.stderr
    # connect and disconnect a new input of a running node
    assert flow("node", "connect", "edits", "counter/count", "listener/more",
                home=daemon).returncode == 0  # fmt: skip
    _wait_log(daemon, "edits", "listener", "input more")
    assert flow("node", "disconnect", "edits", "counter/count", "listener/more",
                home=daemon).returncode == 0  # fmt: skip
    _wait_log(daemon, "edits", "listener", "event INPUT_CLOSED more")
    # remove: its downstream (none here) closes; it stops
    removed = flow("node", "remove", "edits", "extra", home=daemon)
    assert removed.returncode == 0, removed.stderr
    nodes = json.loads(flow("node", "info", "edits", "extra", "--json", home=daemon).stdout)
    assert nodes["status"] == "stopped"
    assert flow("stop", "edits", home=daemon).returncode == 0
    summary = flow("logs", "edits", "sink", home=daemon).stdout.splitlines()[-1]
    assert "gaps=0 repeats=0" in summary  # the rest of the run was never disturbed


def _wait_log(home: Path, run: str, node: str, text: str) -> None:
    deadline = time.monotonic() + 15
    while text not in flow("logs", run, node, home=home).stdout:
        assert time.monotonic() < deadline, f"{text!r} never appeared in {node}'s log"
        time.sleep(0.2)
