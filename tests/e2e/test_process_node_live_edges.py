"""Live receivers of a process node's `send_stdout_as` output: an observer (`flow topic
echo`), a dynamic node attached while the node runs, and graph edits (`flow node add`,
`connect`, `disconnect`) get the lines it prints next, or stop getting them; the daemon
tells the keeper that sends those lines (`wire_stdout`, `unwire_stdout`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import NODES, TALKER, flow, flow_env, wait_for, write_dataflow

WITH_VIEWER = TALKER + """  - id: viewer
    path: dynamic
    inputs:
      data: talker/lines
    outputs: [seen]
"""


def test_echo_and_a_dynamic_node_hear_a_running_process_node(
    daemon: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, WITH_VIEWER, {})
    started = flow("start", str(yml), "--detach", "--name", "talking", home=daemon)
    assert started.returncode == 0, started.stderr
    echo = flow("topic", "echo", "talking", "talker/lines", "--count", "3", home=daemon,
                timeout=30)  # fmt: skip
    assert echo.returncode == 0, echo.stdout + echo.stderr
    numbers = [int(n) for n in re.findall(r"'line (\d+)'", echo.stdout)]
    assert len(numbers) == 3, echo.stdout
    assert numbers == list(range(numbers[0], numbers[0] + 3)), echo.stdout
    viewer = subprocess.run(
        [sys.executable, str(NODES / "viewer.py")],
        env=flow_env(daemon, {"VIEWER_RUN": "talking", "WANT": "5"}),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert viewer.returncode == 0, viewer.stdout + viewer.stderr
    assert "viewer got 5" in viewer.stdout, viewer.stdout + viewer.stderr
    assert flow("stop", "talking", home=daemon).returncode == 0


LISTENER = """
from node_sdk import Node

with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            print(f"{event['id']} heard {event['value']} seq {event['seq']}", flush=True)
        elif event["type"] == "INPUT_CLOSED":
            print(f"closed {event['id']}", flush=True)
"""


def test_graph_edits_wire_and_unwire_a_running_process_nodes_lines(
    daemon: Path, tmp_path: Path
) -> None:
    yml = write_dataflow(tmp_path, TALKER, {"listener.py": LISTENER})
    (tmp_path / "listener.yml").write_text(
        f"id: listener\npath: {tmp_path / 'listener.py'}\ninputs:\n  first: talker/lines\n"
        "  keep: talker/lines\n"  # open while `first` is disconnected: the node goes on
    )
    started = flow("start", str(yml), "--detach", "--name", "edits", home=daemon)
    assert started.returncode == 0, started.stderr

    def log() -> str:
        return flow("logs", "edits", "listener", home=daemon).stdout

    # a node added with an input from it: wired at once (the add waits for no hello)
    added = flow("node", "add", "edits", str(tmp_path / "listener.yml"), home=daemon)
    assert added.returncode == 0, added.stdout + added.stderr
    wait_for(lambda: "first heard line" in log(), "the added node hears the lines")
    assert re.search(r"first heard line \d+ seq 1\n", log()), log()  # its own numbers
    done = flow("node", "disconnect", "edits", "talker/lines", "listener/first", home=daemon)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: "closed first" in log(), "the disconnected input closes")
    done = flow("node", "connect", "edits", "talker/lines", "listener/second", home=daemon)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: "second heard line" in log(), "the connected input hears the lines")
    text = log()
    after = text[text.index("closed first") :]
    assert "first heard" not in after, text  # unwired from the keeper: none came after
    assert flow("stop", "edits", home=daemon).returncode == 0


def test_echo_ends_cleanly_when_the_run_ends(daemon: Path, tmp_path: Path) -> None:
    """The run's end ends its observers' leases: `flow topic echo` says the run ended and
    exits 0, after what it printed (it said `no such observer lease` and exit 2 before)."""
    ending = ("nodes:\n  - id: talker\n    path: sh\n    args: -c 'for i in $(seq 1 30); do "
              "echo \"line $i\"; sleep 0.1; done'\n    outputs: [lines]\n"
              "    send_stdout_as: lines\n")  # fmt: skip
    yml = write_dataflow(tmp_path, ending, {})
    started = flow("start", str(yml), "--detach", "--name", "ends", home=daemon)
    assert started.returncode == 0, started.stderr
    echo = flow("topic", "echo", "ends", "talker/lines", home=daemon, timeout=60)
    assert echo.returncode == 0, echo.stdout + echo.stderr
    assert "'line 30'" in echo.stdout, echo.stdout
    assert "run ends ended" in echo.stdout + echo.stderr, echo.stdout + echo.stderr
    assert "lease" not in echo.stderr, echo.stderr
