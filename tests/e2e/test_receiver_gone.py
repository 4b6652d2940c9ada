"""A receiver that ended for good (the daemon's `receiver_down` with `restarting: false`)
is given up by its senders: they stop waiting on it (no SendTimeout on a backpressure
edge), drop what zmq still queues for it and get back the shared memory only it held. A
receiver that is restarting is not given up: its next generation gets the messages."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from helpers import BOUND_S, flow, run_segments, wait_for, write_dataflow

from node_sdk import shm

# the sender: what it sent so far in COUNT (and the run id in RUN, for the segment names)
SENDER = """
import json, os
from node_sdk import Node

cfg = json.loads(os.environ["FLOW_NODE_CONFIG"])
with open(os.environ["RUN"], "w") as out:
    out.write(cfg["run"])
size, sent = int(os.environ["SIZE"]), 0
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            node.send_output("out", sent.to_bytes(4, "big") * (size // 4))
            sent += 1
            with open(os.environ["COUNT"] + ".tmp", "w") as out:
                out.write(str(sent))
            os.replace(os.environ["COUNT"] + ".tmp", os.environ["COUNT"])
"""

# the receiver: its pid in PID; the first values each generation got in GOT; generation 1
# exits after EXIT_AFTER messages when that is set (a crash: exit 9)
RECEIVER = """
import json, os
from node_sdk import Node

cfg = json.loads(os.environ["FLOW_NODE_CONFIG"])
gen, got = cfg["generation"], 0
with open(os.environ["PID"], "w") as out:
    out.write(str(os.getpid()))
for event in Node():
    if event["type"] != "INPUT":
        continue
    got += 1
    if got <= 5:
        with open(os.environ["GOT"], "a") as out:
            out.write(json.dumps([gen, int.from_bytes(bytes(event["value"][:4]), "big")]) + "\\n")
    if gen == 1 and got == int(os.environ.get("EXIT_AFTER", "0")):
        os._exit(9)
"""

YAML = """
nodes:
  - id: s
    path: sender.py
    inputs: {{t: flow/timer/millis/{tick}}}
    outputs: [out]
    env: {{RUN: '{run}', COUNT: '{count}', SIZE: '{size}'}}
  - id: r
    path: receiver.py
    inputs: {{x: {{source: s/out, queue_size: 5, queue_policy: {policy}}}}}
    env: {{PID: '{pid}', GOT: '{got}', EXIT_AFTER: '{exit_after}'}}
    restart_policy: {restart}
    restart_delay: 0.5
"""


def _start(home: Path, tmp_path: Path, **options: object) -> dict[str, Path]:
    files = {k: tmp_path / k for k in ("run", "count", "pid", "got")}
    fields = {"tick": 10, "size": 16, "policy": "backpressure", "exit_after": 0,
              "restart": "never", **options, **files}  # fmt: skip
    yml = write_dataflow(tmp_path, YAML.format(**fields),
                         {"sender.py": SENDER, "receiver.py": RECEIVER})  # fmt: skip
    done = flow("start", str(yml), "--detach", "--name", "gone", home=home)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: files["pid"].exists() and files["count"].exists(), "both nodes running")
    return files


def _sent(files: dict[str, Path]) -> int:
    try:
        return int(files["count"].read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _node_status(home: Path, node: str) -> str:
    done = flow("node", "info", "gone", node, "--json", home=home)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["status"])


def _stop(home: Path) -> None:
    done = flow("stop", "gone", home=home, timeout=BOUND_S * 4)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_killed_receiver_gives_back_its_shared_memory(daemon: Path, tmp_path: Path) -> None:
    # 128 KiB payloads travel as shared memory; drop_oldest never blocks the sender
    files = _start(daemon, tmp_path, size=128 * 1024, policy="drop_oldest")
    run = files["run"].read_text()
    wait_for(lambda: _sent(files) >= 20, "the sender sends through shared memory")
    assert run_segments(run)
    os.kill(int(files["pid"].read_text()), signal.SIGKILL)  # restart_policy never: for good
    killed_at = _sent(files)
    # held by the dead receiver, each of these would keep a segment (up to the pool's cap)
    wait_for(lambda: _sent(files) >= killed_at + 60, "the sender goes on sending")
    wait_for(lambda: len(run_segments(run)) <= shm.working_set(128 * 1024) + 2,
             "the segments come back")  # fmt: skip
    assert _node_status(daemon, "s") == "running"
    _stop(daemon)


def test_a_receiver_gone_for_good_costs_a_backpressure_sender_no_timeout(
    daemon: Path, tmp_path: Path
) -> None:
    files = _start(daemon, tmp_path, tick=5, exit_after=50)
    wait_for(lambda: _node_status(daemon, "r") == "failed", "the receiver exits (code 9)")
    ended_at = _sent(files)
    # its window (5 credits) is long spent: before, the next send waited 10 s and failed
    wait_for(lambda: _sent(files) >= ended_at + 100, "the sender goes on sending")
    assert _node_status(daemon, "s") == "running"
    _stop(daemon)
    log = flow("logs", "gone", "s", home=daemon)
    assert "SendTimeout" not in log.stdout + log.stderr


def test_a_restarting_receiver_still_gets_messages(daemon: Path, tmp_path: Path) -> None:
    files = _start(daemon, tmp_path, exit_after=20, restart="on-failure")
    got = files["got"]

    def generations() -> set[int]:
        lines = got.read_text().splitlines() if got.exists() else []
        return {json.loads(line)[0] for line in lines}

    wait_for(lambda: 2 in generations(), "the next generation receives")
    _stop(daemon)
