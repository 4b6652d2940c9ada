"""A dynamic node on a member machine (docs/cluster.md, "Dynamic nodes on members"): the
process runs on its machine, attaches to that machine's daemon, which relays the attach to
the coordinator; its data goes over tcp:// with CURVE to and from the nodes on the other."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from helpers import NODES, run_captured, wait_for
from netns import Machine, connected

GRAPH = f"""
nodes:
  - id: counter
    path: {NODES}/counter.py
    inputs: {{tick: flow/timer/millis/20}}
    outputs: [count]
  - id: viewer
    path: dynamic
    deploy: {{machine: b}}
    # a queue no loaded machine fills: the test looks for gaps on the wire, not drops
    inputs: {{data: {{source: counter/count, queue_size: 1000}}}}
    outputs: [seen]
  - id: here
    path: dynamic
    inputs: {{data: counter/count}}
    outputs: [seen]
  - id: sink
    path: {NODES}/seqsink.py
    inputs: {{data: {{source: viewer/seen, queue_size: 1000}}}}
"""


def _start(a: Machine, folder: Path) -> str:
    folder.chmod(0o755)
    wait_for(lambda: connected(a, "b"), "b connected")
    path = folder / "live.yml"
    path.write_text(GRAPH)
    started = a.flow("start", "--detach", "--name", "live", str(path))
    assert started.returncode == 0, started.stdout + started.stderr
    return started.stdout.strip().split()[-1]


def _viewer(machine: Machine, **extra: str) -> subprocess.CompletedProcess[str]:
    """tests/nodes/viewer.py started by hand on `machine`, as a user would."""
    argv = machine.argv([sys.executable, str(NODES / "viewer.py")])
    return run_captured(argv, {**machine.env(), **extra})  # its FLOW_HOME


def _status(a: Machine, node: str) -> str:
    listed = [json.loads(line) for line in a.flow("node", "list", "live", "--json").stdout.split(
        "\n") if line]  # fmt: skip
    return str(next(n["status"] for n in listed if n["id"] == node))


def _sink(a: Machine) -> list[str]:
    return a.flow("logs", "live", "sink").stdout.splitlines()


def test_a_dynamic_node_on_b_attaches_there_receives_sends_and_reattaches(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = cluster["a"], cluster["b"]
    _start(a, tmp_path)
    for attach in (1, 2):  # detached by close, then attached again
        done = _viewer(b, WANT="30", VIEWER_RUN="live")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "viewer got 30" in done.stdout, done.stdout
        wait_for(lambda: _status(a, "viewer") == "dynamic", f"attach {attach}: slot freed")
        # what the viewer forwarded reached the sink on a: consecutive counter values
        # (no gap from a to b) with consecutive sequence numbers (none from b to a)
        wait_for(lambda attach=attach: len([line for line in _sink(a) if "got data" in line])
                 >= 30 * attach, f"attach {attach}: 30 values at the sink")  # fmt: skip
    got = [re.search(r"got data (\d+) seq (\d+)", line) for line in _sink(a)]
    pairs = [(int(m[1]), int(m[2])) for m in got if m]
    for generation in (pairs[:30], pairs[30:60]):  # each attach numbers from 1
        values, seqs = [v for v, _ in generation], [s for _, s in generation]
        assert seqs == list(range(1, 31)), seqs
        assert values == list(range(values[0], values[0] + 30)), values
    stopped = a.flow("stop", "live")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "gaps=0 repeats=0" in _sink(a)[-1]


def test_refusals_are_one_line_and_a_crashed_node_frees_its_slot(
    cluster: dict[str, Machine], tmp_path: Path
) -> None:
    a, b = cluster["a"], cluster["b"]
    _start(a, tmp_path)
    holder = subprocess.Popen(b.argv([sys.executable, str(NODES / "viewer.py")]),
                              env={**b.env(), "WANT": "1000000"},
                              stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: _status(a, "viewer") == "running", "the holder attached on b")
        cases = [
            (b, "no running dataflow with ID or name nope", {"VIEWER_RUN": "nope"}),
            (b, "node counter in dataflow live is not dynamic", {"VIEWER_ID": "counter"}),
            (b, "node viewer in dataflow live is already attached", {}),
            (b, "node here in dataflow live is placed on machine a, not b", {"VIEWER_ID": "here"}),
            (a, "node viewer in dataflow live is placed on machine b: attach it there", {}),
        ]
        for machine, expected, env in cases:
            refusals = (machine.home / "daemon.log").read_text().count("dynamic attach refused")
            done = _viewer(machine, **{"VIEWER_RUN": "live", **env})
            assert done.returncode == 3, (expected, done.stdout, done.stderr)
            lines = done.stdout.strip().splitlines()
            assert lines == [f"refused: {lines[0].removeprefix('refused: ')}"], lines
            assert expected in lines[0], lines[0]
            # and one log line on the machine where it attached (SPEC 6)
            log = (machine.home / "daemon.log").read_text()
            assert log.count("dynamic attach refused") == refusals + 1, expected
        # a crash (no bye): b sees the process gone and tells the coordinator, which frees
        # the slot (without b's word, its missed heartbeat would)
        holder.kill()
        holder.wait()
        wait_for(lambda: _status(a, "viewer") == "dynamic", "the crashed node detached")
        gone = f"dynamic node viewer detached: process {holder.pid} on machine b is gone"
        assert gone in (a.home / "daemon.log").read_text()
    finally:
        holder.kill()
        holder.wait()
    again = _viewer(b, WANT="5", VIEWER_RUN="live")
    assert again.returncode == 0, again.stdout + again.stderr
    assert connected(a, "b")
