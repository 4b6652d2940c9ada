"""`flow topic echo|hz|info` and `flow top` on the coordinator, for a node placed on another
machine (docs/cluster.md, "Seen from the coordinator"): real namespaces, daemons and CLI."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pexpect
from helpers import BOUND_S, REPO, wait_for
from netns import Machine

SOURCE = """
from node_sdk import Node
node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        sent += 1
        node.send_output("counter", str(sent), {"n": sent})
        node.send_output("big", bytes(100_000))
    elif event["type"] == "STOP":
        break
"""

SINK = """
from node_sdk import Node
for event in Node():
    if event["type"] == "STOP":
        break
"""


def _started(cluster: dict[str, Machine], folder: Path) -> tuple[Machine, str]:
    """The coordinator `a` and the run of a source placed on `b` (a sink on `a`), running."""
    a = cluster["a"]
    folder.chmod(0o755)  # the member reads the node files too
    (folder / "source.py").write_text(SOURCE)
    (folder / "sink.py").write_text(SINK)
    (folder / "watched.yml").write_text("""
name: watched
nodes:
  - id: source
    path: source.py
    deploy: {machine: b}
    inputs: {tick: dora/timer/millis/20}
    outputs: [counter, big]
  - id: sink
    path: sink.py
    inputs: {counter: source/counter}
  - id: tap
    path: sink.py
    deploy: {machine: b}
    inputs: {counter: source/counter}
""")

    def b_connected() -> bool:
        rows = json.loads(a.flow("cluster", "status", "--json").stdout)["machines"]
        return any(row["name"] == "b" and row["state"] == "connected" for row in rows)

    wait_for(b_connected, "b connected")
    started = a.flow("start", "--detach", str(folder / "watched.yml"))
    assert started.returncode == 0, started.stdout + started.stderr
    return a, started.stdout.strip().split()[-1]


def test_topic_echo_hz_and_info_see_a_node_on_another_machine(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, run = _started(cluster, tmp_path)
    echo = a.flow("topic", "echo", run, "source/counter", "--count", "5", "--json")
    assert echo.returncode == 0, echo.stdout + echo.stderr
    samples = [json.loads(line) for line in echo.stdout.splitlines()]
    assert len(samples) == 5
    # the messages themselves: values, metadata and numbering as the node sent them
    for sample in samples:
        assert sample["type"] == "str"
        assert sample["metadata"] == {"n": int(sample["value"])}
    seqs = [s["seq"] for s in samples]
    assert seqs == list(range(seqs[0], seqs[0] + 5)), seqs
    # a payload in shared memory on b stays there: its kind and size are relayed
    big = a.flow("topic", "echo", run, "source/big", "--count", "2")
    assert big.returncode == 0, big.stdout + big.stderr
    assert big.stdout.count("<bytes, 100000 bytes: not relayed from its machine>") == 2, big.stdout
    hz = a.flow("topic", "hz", run, "source/counter", "--count", "25")
    assert hz.returncode == 0, hz.stdout + hz.stderr
    found = re.search(r"25 messages in [\d.]+ s: rate ([\d.]+)/s", hz.stdout)
    assert found is not None, hz.stdout
    assert 10 < float(found.group(1)) < 100, hz.stdout  # the sender's 50/s, by its stamps
    info = a.flow("topic", "info", run, "source/counter", "--sample", "1s", "--json")
    assert info.returncode == 0, info.stdout + info.stderr
    facts = json.loads(info.stdout)
    assert facts["seen"]["messages"] > 10, facts
    assert facts["seen"]["encodings"] == ["str"], facts
    # an input on b is not reachable from here: refused in one line
    pub = a.flow("topic", "pub", run, "tap/counter", "1")
    assert pub.returncode != 0
    assert pub.stderr.count("\n") == 1, pub.stderr
    assert "runs on machine b" in pub.stderr, pub.stderr
    # the observers opened on b for them are closed there, their sockets removed
    where = cluster["b"].python(
        "import os, pathlib; from node_sdk import paths; "
        "print(paths.socket_dir(pathlib.Path(os.environ['FLOW_HOME'])))"
    )
    sockets = Path(where.stdout.strip())
    assert sockets.is_dir(), where.stdout + where.stderr
    wait_for(lambda: not list(sockets.glob("obs-*")), "b's observer sockets removed")
    assert a.flow("stop", run).returncode == 0


def test_top_on_the_coordinator_shows_a_remote_nodes_machine_cpu_and_rates(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, run = _started(cluster, tmp_path)
    env = a.env()
    env["COLUMNS"], env["LINES"] = "200", "30"
    command = a.argv([sys.executable, "-m", "cli", "top", "--interval", "300ms"])
    child = pexpect.spawn(command[0], command[1:], env=env, cwd=str(REPO), timeout=BOUND_S,
                          encoding="utf-8", dimensions=(30, 200))  # fmt: skip
    # NODE, MACHINE, STATUS, PID, CPU%, RSS, IN/S, OUT/S: the source measured on b, its
    # rate from its own reports (a number, not `-`, once it has reported twice)
    row = re.compile(r"source +b +running +\d+ +(\d+\.\d) +(\d+\.\dM) +[\d.]+ +(\d+\.\d) ")
    try:
        child.expect("MACHINE")
        deadline = time.monotonic() + BOUND_S
        while True:
            child.expect(row)
            if float(child.match.group(3)) > 0:
                break
            assert time.monotonic() < deadline, "the remote node's rate never shown"
        child.expect(r"sink +a +running")
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        if child.isalive():
            child.terminate(force=True)
    child.close()
    assert child.exitstatus == 0, child.before
    assert a.flow("stop", run).returncode == 0
