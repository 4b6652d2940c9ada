"""An output's messages are what its node sent, each once, however many edges it went out
on: a node sending to one receiver while `flow topic echo` watches it (an observer, one
edge more) showed twice its messages, and twice its rate, in `flow node info`, `flow topic
info`, `flow top` and the metrics. An SDK node and a process node (`send_stdout_as`, whose
lines its keeper counts) alike (docs/telemetry.md)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import NODES, flow, flow_env, wait_for, write_dataflow

COUNT = 60  # messages the sender sends once `go` exists, one per 20 ms tick, then no more

PACER = f"""
import os
from pathlib import Path

from node_sdk import Node

go = Path(__file__).with_name("go")
sent = 0
with Node() as node:
    for event in node:
        if event["type"] == "INPUT" and sent < {COUNT} and go.exists():
            sent += 1
            node.send_output("out", b"frame %03d" % sent)
"""
SDK_GRAPH = f"""
nodes:
  - id: pacer
    path: pacer.py
    inputs:
      tick: flow/timer/millis/20
    outputs: [out]
  - id: sink
    path: {NODES / "seqsink.py"}
    inputs:
      data: {{source: pacer/out, queue_size: 1000}}
"""
FRAME_BYTES = len(b"frame 001")


def _process_graph(go: Path) -> str:
    script = (f"while [ ! -e {go} ]; do sleep 0.05; done; i=0; "
              f"while [ $i -lt {COUNT} ]; do i=$((i+1)); echo \"line $i\"; sleep 0.02; done; "
              "exec sleep 600")  # fmt: skip
    return f"""
nodes:
  - id: pacer
    path: sh
    args: -c '{script}'
    outputs: [out]
    send_stdout_as: out
  - id: sink
    path: {NODES / "seqsink.py"}
    inputs:
      data: {{source: pacer/out, queue_size: 1000}}
"""


def _json(*args: str, home: Path) -> Any:
    done = flow(*args, "--json", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _counted_once_with_an_observer(home: Path, tmp_path: Path, run: str) -> dict[str, Any]:
    """Start `flow topic echo` on pacer/out, let the pacer send COUNT messages, and return
    `flow node info pacer`'s figures of `out` once the sink and the echo have them all."""
    log = (tmp_path / "echo.out").open("w")
    echo = subprocess.Popen(
        [sys.executable, "-m", "cli", "topic", "echo", run, "pacer/out"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=flow_env(home),
    )  # fmt: skip
    try:
        observed = lambda: _json("topic", "info", run, "pacer/out", "--sample", "0",  # noqa: E731
                                 home=home)["observers"] == 1  # fmt: skip
        wait_for(observed, "the echo observes pacer/out")
        (tmp_path / "go").touch()  # the pacer sends from here on, to the sink and the echo

        def delivered() -> int:
            stats = _json("node", "info", run, "sink", home=home)["stats"] or {}
            return int((stats.get("inputs") or {}).get("data", {}).get("delivered", 0))

        wait_for(lambda: delivered() == COUNT, f"the sink got the pacer's {COUNT} messages")
        echoed = tmp_path / "echo.out"
        wait_for(lambda: len(re.findall(r" seq \d+: ", echoed.read_text())) == COUNT,
                 f"the echo got the pacer's {COUNT} messages")  # fmt: skip

        def out() -> dict[str, Any]:
            stats = _json("node", "info", run, "pacer", home=home)["stats"] or {}
            return dict((stats.get("outputs") or {}).get("out") or {})

        wait_for(lambda: out().get("sent", 0) >= COUNT, "the pacer reported what it sent")
        time.sleep(1.5)  # a report more: nothing is sent any more, nothing changes
        return out()
    finally:
        echo.send_signal(signal.SIGINT)  # Ctrl-C: echo ends and removes its socket
        echo.wait(timeout=30)
        log.close()


def _topic_info_says_once(home: Path, run: str) -> None:
    info = _json("topic", "info", run, "pacer/out", "--sample", "0", home=home)
    assert (info["sent"], info["dropped"]) == (COUNT, 0), info
    text = flow("topic", "info", run, "pacer/out", "--sample", "0", home=home).stdout
    assert re.search(rf"sent\s+{COUNT}  dropped 0 \(summed over its edges\)", text), text


def test_an_sdk_nodes_messages_count_once_with_an_observer_attached(
    daemon: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, SDK_GRAPH, {"pacer.py": PACER})
    started = flow("start", str(yml), "--detach", "--name", "paced", home=daemon)
    assert started.returncode == 0, started.stdout + started.stderr
    out = _counted_once_with_an_observer(daemon, tmp_path, "paced")
    # two edges (the sink's, the echo's) each took every message: sent once each
    assert out == {"sent": COUNT, "dropped": 0, "bytes": COUNT * FRAME_BYTES}, out
    _topic_info_says_once(daemon, "paced")
    text = flow("node", "info", "paced", "pacer", home=daemon).stdout
    assert re.search(rf"out out\s+{COUNT}\s+{COUNT * FRAME_BYTES}\s+0\s", text), text
    assert flow("stop", "paced", home=daemon).returncode == 0


def test_a_process_nodes_lines_count_once_with_an_observer_attached(
    daemon: Path, tmp_path: Path
) -> None:
    """The keeper sends a `send_stdout_as` node's lines, and counts them as the SDK does."""
    yml = write_dataflow(tmp_path, _process_graph(tmp_path / "go"), {})
    started = flow("start", str(yml), "--detach", "--name", "printed", home=daemon)
    assert started.returncode == 0, started.stdout + started.stderr
    out = _counted_once_with_an_observer(daemon, tmp_path, "printed")
    lines = sum(len(f"line {n}") for n in range(1, COUNT + 1))
    assert out == {"sent": COUNT, "dropped": 0, "bytes": lines}, out
    _topic_info_says_once(daemon, "printed")
    assert flow("stop", "printed", home=daemon).returncode == 0
