"""Live operations on a running dataflow: topics, top, and graph edits (SPEC 8)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import zmq
from helpers import NODES, TALKER, flow, flow_env, start_stream, stream_graph

from cli import client
from daemon.model.requests import TopicRenew, TopicSubscribe, TopicUnsubscribe
from node_sdk import paths

BOUND_S = 60.0  # a safety bound on every wait, never an assertion about speed
AFTER_FULL = 200  # messages the sender must send after the observer's edge is full

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


def output_counts(home: Path, run: str) -> dict[str, int]:
    """The counter's last reported `sent` and `dropped` on `count` (zeros before a report)."""
    node = json.loads(flow("node", "info", run, "counter", "--json", home=home).stdout)
    counts = ((node.get("stats") or {}).get("outputs") or {}).get("count") or {}
    return {"sent": counts.get("sent", 0), "dropped": counts.get("dropped", 0)}


def wait_counts(home: Path, run: str, until: Callable[[dict[str, int]], bool], what: str,
                renew: Callable[[], None]) -> dict[str, int]:  # fmt: skip
    """Poll the counter's counts until `until` holds, keeping the observer's lease."""
    deadline = time.monotonic() + BOUND_S
    while not until(counts := output_counts(home, run)):
        assert time.monotonic() < deadline, f"{what}: the counter's counts stayed {counts}"
        renew()
        time.sleep(0.3)
    return counts


def test_topic_list_echo_and_hz(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "topics")
    listed = flow("topic", "list", "topics", home=daemon)
    assert "counter/count" in listed.stdout
    assert "sink/data" in listed.stdout
    echo = flow("topic", "echo", "topics", "counter/count", "--count", "5", home=daemon)
    assert echo.returncode == 0, echo.stderr
    lines = [line for line in echo.stdout.splitlines() if " seq " in line]  # `HH:MM:SS.mmm seq N`
    assert len(lines) == 5
    assert all("'" in line for line in lines)  # str payloads shown as strings
    hz = flow("topic", "hz", "topics", "counter/count", "--duration", "3", home=daemon)
    assert hz.returncode == 0, hz.stderr
    assert "rate " in hz.stdout
    bad = flow("topic", "echo", "topics", "counter/nope", "--count", "1", home=daemon)
    assert bad.returncode == 2
    assert "has no output 'nope'" in bad.stderr
    assert flow("stop", "topics", home=daemon).returncode == 0


def test_a_stuck_observer_does_not_slow_the_sender(daemon: Path, tmp_path: Path) -> None:
    """Counts, not rates: with an observer that reads nothing, the sender fills that edge,
    drops for it and keeps sending, and its real receiver loses nothing."""
    start_stream(daemon, tmp_path, "slow", tick_ms=2)
    # the observer: a socket bound where the daemon accepts observers, never read; the test
    # holds its lease, so it stays wired however long the edge takes to fill
    endpoint = paths.observer_endpoint(paths.socket_dir(daemon), os.getpid(), "57c0c7")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    stuck = context.socket(zmq.PULL)
    stuck.linger = 0
    stuck.rcvhwm = 1
    stuck.bind(endpoint)
    try:
        lease = client.call(TopicSubscribe(run="slow", topic="counter/count", endpoint=endpoint))

        def renew() -> None:
            client.call(TopicRenew(lease=lease.lease))

        # a drop proves the edge to the stuck observer is full and the sender went on
        full = wait_counts(
            daemon, "slow", lambda c: c["dropped"] > 0, "no drop for the stuck observer", renew
        )
        later = wait_counts(
            daemon, "slow", lambda c: c["sent"] >= full["sent"] + AFTER_FULL,
            f"not {AFTER_FULL} more sent with the observer stuck", renew,
        )  # fmt: skip
        assert later["dropped"] > full["dropped"]  # still stuck, still dropped for, not waited on
        client.call(TopicRenew(lease=lease.lease))  # it was wired the whole time
        client.call(TopicUnsubscribe(lease=lease.lease))
    finally:
        context.destroy(linger=0)
        Path(endpoint.removeprefix("ipc://")).unlink(missing_ok=True)
    assert flow("stop", "slow", home=daemon).returncode == 0
    summary = flow("logs", "slow", "sink", home=daemon).stdout.splitlines()[-1]
    assert "gaps=0 repeats=0" in summary


def test_a_killed_echo_is_unwired_and_its_socket_removed(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "killed")
    # a terminal that reads nothing: echo blocks in print and stops renewing its lease
    echo = subprocess.Popen(
        [sys.executable, "-m", "cli", "topic", "echo", "killed", "counter/count"],
        env=flow_env(daemon), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + BOUND_S
        while not list(paths.socket_dir(daemon).glob("obs-*")):
            assert time.monotonic() < deadline, "echo never bound its observer socket"
            time.sleep(0.1)
    finally:
        echo.kill()
        echo.wait()
        assert echo.stdout is not None
        echo.stdout.close()
    # the killed observer's lease runs out, and the daemon removes its socket file
    deadline = time.monotonic() + BOUND_S
    while list(paths.socket_dir(daemon).glob("obs-*")):
        assert time.monotonic() < deadline, "the observer's socket file was left behind"
        time.sleep(0.2)
    assert flow("stop", "killed", home=daemon).returncode == 0
    summary = flow("logs", "killed", "sink", home=daemon).stdout.splitlines()[-1]
    assert "gaps=0 repeats=0" in summary


def test_an_observer_killed_before_subscribing_leaves_no_socket(daemon: Path) -> None:
    # bound, then killed before its subscribe request: no lease will ever name the file
    sockets = paths.socket_dir(daemon)
    bind = (
        "import os, sys, time, zmq\n"
        "from node_sdk import paths\n"
        "endpoint = paths.observer_endpoint(paths.Path(sys.argv[1]), os.getpid(), 'abcdef')\n"
        "zmq.Context().socket(zmq.PULL).bind(endpoint)\n"
        "print(endpoint, flush=True)\n"
        "time.sleep(60)\n"
    )
    observer = subprocess.Popen(
        [sys.executable, "-c", bind, str(sockets)], stdout=subprocess.PIPE, text=True
    )
    assert observer.stdout is not None
    socket = Path(observer.stdout.readline().strip().removeprefix("ipc://"))
    assert socket.parent == sockets
    assert socket.is_socket()
    time.sleep(1.5)  # the daemon's sweeps meanwhile leave a live observer's socket alone
    assert socket.exists()
    observer.kill()
    observer.wait()
    observer.stdout.close()
    deadline = time.monotonic() + BOUND_S
    while socket.exists():
        assert time.monotonic() < deadline, "the dead observer's socket file was left behind"
        time.sleep(0.2)


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
            for rate in ("in_rate", "out_rate"):  # None before the node's second report
                assert node[rate] is None or node[rate] >= 0.0, node
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
    assert f"{snippet}:1: id: node 'extra' is already in the run (flow node remove it" \
        in dup.stderr  # not `duplicate node id` with a line of the run's file  # fmt: skip
    for wrong, said in ((tmp_path / "none.yml", "no such dataflow file: "),
                        (tmp_path, " is a folder; did you mean ")):  # fmt: skip
        refused = flow("node", "add", "edits", str(wrong), home=daemon)
        assert refused.returncode == 2, refused.stderr
        assert said in refused.stderr, refused.stderr  # as `flow start` says it
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
    # out of the live graph (`node list`, `node info`); the run's record keeps how it ended
    assert flow("node", "info", "edits", "extra", home=daemon).returncode == 1
    listed = flow("node", "list", "edits", "--json", home=daemon).stdout.splitlines()
    assert "extra" not in [json.loads(line)["id"] for line in listed]
    runs = [json.loads(line) for line in flow("list", "--json", home=daemon).stdout.splitlines()]
    recorded = {n["id"]: (n["status"], n["removed"]) for n in runs[0]["nodes"]}
    assert recorded["extra"] == ("stopped", True)
    # a removed node is gone for every edit: removed again, or an edge to it
    for edit in (("remove", "extra"), ("connect", "counter/count", "extra/data")):
        refused = flow("node", *edit[:1], "edits", *edit[1:], home=daemon)
        assert refused.returncode == 1, refused.stdout
        assert "no node 'extra'" in refused.stderr
    topics = flow("topic", "list", "edits", home=daemon).stdout
    assert "extra" not in topics, topics  # neither a topic nor a receiver any more
    stopped = flow("stop", "edits", home=daemon)
    assert stopped.returncode == 0
    assert re.search(r"extra +removed from the run \(stopped", stopped.stdout), stopped.stdout
    summary = flow("logs", "edits", "sink", home=daemon).stdout.splitlines()[-1]
    assert "gaps=0 repeats=0" in summary  # the rest of the run was never disturbed


def test_a_removed_node_can_be_added_again(daemon: Path, tmp_path: Path) -> None:
    """Its id is free once it is removed: the new one takes its place, in a new generation
    (its receivers and the keeper's ledger tell generations apart), and hears its input."""
    start(daemon, tmp_path, "again")
    snippet = tmp_path / "extra.yml"
    snippet.write_text(f"id: extra\npath: {NODES}/listener.py\ninputs:\n  data: counter/count\n")
    assert flow("node", "add", "again", str(snippet), home=daemon).returncode == 0
    _wait_log(daemon, "again", "extra", "input data")
    assert flow("node", "remove", "again", "extra", home=daemon).returncode == 0
    readded = flow("node", "add", "again", str(snippet), home=daemon)
    assert readded.returncode == 0, readded.stderr
    node = json.loads(flow("node", "info", "again", "extra", "--json", home=daemon).stdout)
    assert (node["status"], node["generation"], node["removed"]) == ("running", 2, False)
    heard = flow("logs", "again", "extra", home=daemon).stdout.count("input data")
    deadline = time.monotonic() + BOUND_S
    while flow("logs", "again", "extra", home=daemon).stdout.count("input data") < heard + 5:
        assert time.monotonic() < deadline, "the added-again node hears nothing"
        time.sleep(0.2)
    stopped = flow("stop", "again", home=daemon)
    assert stopped.returncode == 0
    assert re.search(r"extra +stopped", stopped.stdout), stopped.stdout


def test_no_edge_to_or_from_a_node_that_has_ended(daemon: Path, tmp_path: Path) -> None:
    yml = tmp_path / "ended.yml"
    yml.write_text(TALKER + "  - id: done\n    path: sh\n    args: -c 'exit 0'\n"
                   "    outputs: [out]\n")  # fmt: skip
    assert flow("start", str(yml), "--detach", "--name", "ended", home=daemon).returncode == 0
    deadline = time.monotonic() + BOUND_S
    while '"succeeded"' not in flow("node", "info", "ended", "done", "--json", home=daemon).stdout:
        assert time.monotonic() < deadline, "node done never ended"
        time.sleep(0.2)
    into = flow("node", "connect", "ended", "talker/lines", "done/x", home=daemon)
    assert into.returncode == 2, into.stdout
    assert "node 'done' of run ended has ended (succeeded): it reads nothing" in into.stderr
    snippet = tmp_path / "late.yml"
    snippet.write_text("id: late\npath: sh\nargs: -c 'sleep 60'\ninputs:\n  x: done/out\n")
    late = flow("node", "add", "ended", str(snippet), home=daemon)
    assert late.returncode == 2, late.stdout
    assert "node 'done' of run ended has ended (succeeded): it sends nothing" in late.stderr
    # refused edits leave the run as it was: the talker still talks, no `late` was added
    nodes = flow("node", "list", "ended", "--json", home=daemon).stdout.splitlines()
    assert {json.loads(line)["id"]: json.loads(line)["status"] for line in nodes} == {
        "talker": "running", "done": "succeeded"}  # fmt: skip
    assert flow("stop", "ended", home=daemon).returncode == 0


def _wait_log(home: Path, run: str, node: str, text: str) -> None:
    deadline = time.monotonic() + 15
    while text not in flow("logs", run, node, home=home).stdout:
        assert time.monotonic() < deadline, f"{text!r} never appeared in {node}'s log"
        time.sleep(0.2)
