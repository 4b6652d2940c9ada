"""Live edits as dora's examples drive them: add then connect at once, fan-in, dora's flags."""

from __future__ import annotations

import time
from pathlib import Path

from helpers import NODES, flow

BOUND_S = 60.0  # a safety bound on every wait, never an assertion about speed

GRAPH = f"""
nodes:
  - id: sender
    path: {NODES}/tagger.py
    env: {{TAG: a}}
    inputs:
      tick: flow/timer/millis/50
    outputs: [out]
  - id: receiver
    path: {NODES}/listener.py
    inputs:
      tick: flow/timer/secs/1
      data: sender/out
"""


def start(home: Path, tmp_path: Path, name: str) -> None:
    yml = tmp_path / f"{name}.yml"
    yml.write_text(GRAPH)
    done = flow("start", str(yml), "--detach", "--name", name, home=home)
    assert done.returncode == 0, done.stderr


def wait_log(home: Path, run: str, node: str, text: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while text not in flow("logs", run, node, home=home).stdout:
        assert time.monotonic() < deadline, f"{text!r} never appeared in {node}'s log"
        time.sleep(0.3)


def test_add_then_connect_at_once_wires_the_new_node(daemon: Path, tmp_path: Path) -> None:
    """dora's dynamic-add-remove: `node add` then two `node connect`, no pause between; the
    filter takes 2 s to connect, as a node with heavy imports does."""
    start(daemon, tmp_path, "addcon")
    snippet = tmp_path / "filter-node.yml"
    snippet.write_text(
        f"id: filter\npath: {NODES}/forward.py\nenv:\n  SPAWN_FILE: {tmp_path / 'spawns'}\n"
        "  SLOW_S: 2\noutputs:\n  - out\n"
    )
    added = flow("node", "add", "--from-yaml", str(snippet), "--dataflow", "addcon", home=daemon)
    assert added.returncode == 0, added.stderr
    first = flow("node", "connect", "--dataflow", "addcon", "sender/out", "filter/in",
                 home=daemon)  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = flow("node", "connect", "-d", "addcon", "filter/out", "receiver/filtered",
                  home=daemon)  # fmt: skip
    assert second.returncode == 0, second.stderr
    wait_log(daemon, "addcon", "receiver", "input filtered a-")
    removed = flow("node", "remove", "--dataflow", "addcon", "filter", home=daemon)
    assert removed.returncode == 0, removed.stderr
    wait_log(daemon, "addcon", "receiver", "event INPUT_CLOSED filtered")
    assert flow("stop", "addcon", home=daemon).returncode == 0


def test_a_second_source_on_one_input_fans_in(daemon: Path, tmp_path: Path) -> None:
    """dora's dynamic-agent-tools: a new tool's output joins an input already connected."""
    start(daemon, tmp_path, "fanin")
    wait_log(daemon, "fanin", "receiver", "input data a-")
    snippet = tmp_path / "tool.yml"
    snippet.write_text(
        f"id: tool\npath: {NODES}/tagger.py\nenv: {{TAG: b}}\ninputs:\n"
        "  tick: flow/timer/millis/50\noutputs: [out]\n"
    )
    assert flow("node", "add", "fanin", str(snippet), home=daemon).returncode == 0
    joined = flow("node", "connect", "fanin", "tool/out", "receiver/data", home=daemon)
    assert joined.returncode == 0, joined.stderr
    wait_log(daemon, "fanin", "receiver", "input data b-")
    again = flow("node", "connect", "fanin", "tool/out", "receiver/data", home=daemon)
    assert again.returncode == 2
    assert "tool/out is already connected to receiver/data" in again.stderr
    # one source leaves: the input stays open, the other source still feeds it
    left = flow("node", "disconnect", "fanin", "tool/out", "receiver/data", home=daemon)
    assert left.returncode == 0, left.stderr
    before = flow("logs", "fanin", "receiver", home=daemon).stdout.count("input data a-")
    deadline = time.monotonic() + BOUND_S
    while flow("logs", "fanin", "receiver", home=daemon).stdout.count("input data a-") <= before:
        assert time.monotonic() < deadline, "the remaining source stopped feeding the input"
        time.sleep(0.3)
    assert "INPUT_CLOSED data" not in flow("logs", "fanin", "receiver", home=daemon).stdout
    assert flow("stop", "fanin", home=daemon).returncode == 0


def test_dataflow_alias_naming_another_run_is_one_line(daemon: Path, tmp_path: Path) -> None:
    start(daemon, tmp_path, "alias")
    logs = tmp_path / "viewer.yml"
    logs.write_text(f"id: viewer\npath: {NODES}/listener.py\ninputs:\n  all: dora/logs\n")
    refused = flow("node", "add", "--from-yaml", str(logs), "-d", "alias", home=daemon)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[1:] == [
        f"{logs}:4: inputs.all: a dora/logs input cannot be added to a running dataflow (its "
        "nodes already send their logs as they were started)"
    ]
    both = flow("node", "remove", "alias", "receiver", "--dataflow", "other", home=daemon)
    assert both.returncode == 2
    assert both.stderr.strip().splitlines() == [
        "error: two runs named: alias and --dataflow other"
    ]
    assert flow("stop", "alias", home=daemon).returncode == 0


def test_add_of_a_node_that_does_not_connect_is_one_line(daemon: Path, tmp_path: Path) -> None:
    """The add waits for the node, within its connect_timeout, then says so in one line."""
    start(daemon, tmp_path, "late")
    snippet = tmp_path / "late.yml"
    snippet.write_text(
        f"id: late\npath: {NODES}/slowstart.py\nenv: {{SLOW_S: 30}}\nconnect_timeout: 1s\n"
    )
    added = flow("node", "add", "late", str(snippet), home=daemon)
    assert added.returncode == 2
    assert added.stderr.strip().splitlines() == [
        "error: node 'late' is added but has not connected within 1s (see `flow logs` for it)"
    ]
    assert flow("stop", "late", home=daemon).returncode == 0
