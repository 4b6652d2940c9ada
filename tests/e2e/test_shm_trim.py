"""A sender's pool grows past its working set while a receiver stalls, and once the
receiver has caught up that excess is removed (node_sdk/shm.py, TRIM_IDLE_S) and the
receiver and the run's recorder unmap it (node_sdk/leases.py, `ShmReader.sweep`): a
burst's segments are not kept until the node ends, by the sender nor by its readers."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import BOUND_S, flow, wait_for, write_dataflow

from node_sdk import shm

SIZE = 200_000  # shared memory (a 256 KiB class, whose working set is 8 segments)
BURST = 20

# a burst of BURST payloads at its first tick, then one a tick; the run id in RUN
SENDER = """
import json, os
from node_sdk import Node

with open(os.environ["RUN"], "w") as out:
    out.write(json.loads(os.environ["FLOW_NODE_CONFIG"])["run"])
size, burst, sent = int(os.environ["SIZE"]), int(os.environ["BURST"]), 0
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            for _ in range(burst if sent == 0 else 1):
                sent += 1
                node.send_output("out", sent.to_bytes(4, "big") * (size // 4))
"""

# stalls at its first message, holding what comes meanwhile; its pid in PID
RECEIVER = """
import os, time
from node_sdk import Node

with open(os.environ["PID"] + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.replace(os.environ["PID"] + ".tmp", os.environ["PID"])
got = 0
for event in Node():
    if event["type"] == "INPUT":
        got += 1
        if got == 1:
            time.sleep(1.0)
"""

YAML = """
nodes:
  - id: s
    path: sender.py
    inputs: {{t: flow/timer/millis/50}}
    outputs: [out]
    env: {{RUN: '{run}', SIZE: '{size}', BURST: '{burst}'}}
  - id: r
    path: receiver.py
    inputs: {{x: {{source: s/out, queue_size: 100}}}}
    env: {{PID: '{pid}'}}
"""


def _segments(run: str) -> int:
    prefix = shm.run_prefix(run)
    return sum(1 for name in os.listdir(shm.SHM_DIR) if name.startswith(prefix))


def _removed_but_mapped(pid: int) -> list[str]:
    """The segments the receiver still maps that are gone from /dev/shm."""
    segment = f"{shm.SHM_DIR}/{shm.NAME_PREFIX}"
    with open(f"/proc/{pid}/maps") as maps:
        return [line.split()[-2] for line in maps
                if segment in line and line.endswith("(deleted)\n")]  # fmt: skip


def _recorder(path: Path) -> int | None:
    """The pid of the recorder writing `path` (its command line carries its config)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"daemon.recorder" in cmdline and str(path).encode() in cmdline:
            return int(pid)
    return None


def test_a_stalls_excess_segments_go_once_the_receiver_caught_up(
    daemon: Path, tmp_path: Path
) -> None:
    run_file, pid_file, rec = tmp_path / "run", tmp_path / "pid", tmp_path / "trim.mcap"
    yml = write_dataflow(
        tmp_path, YAML.format(run=run_file, pid=pid_file, size=SIZE, burst=BURST),
        {"sender.py": SENDER, "receiver.py": RECEIVER},
    )  # fmt: skip
    done = flow("start", str(yml), "--detach", "--name", "trim", "--record", str(rec),
                home=daemon)  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for(lambda: run_file.exists() and pid_file.exists(), "both nodes running")
    run, receiver = run_file.read_text(), int(pid_file.read_text())
    wait_for(lambda: _recorder(rec) is not None, "the recorder running")
    recorder = _recorder(rec)
    assert recorder is not None
    working_set = shm.working_set(256 * 1024)
    most = [0]

    def grew() -> bool:
        most[0] = max(most[0], _segments(run))
        return most[0] > working_set

    wait_for(grew, "the pool grows past its working set while the receiver stalls")
    wait_for(lambda: _segments(run) <= working_set, "the excess is removed once idle")
    wait_for(lambda: not _removed_but_mapped(receiver), "the receiver unmaps what was removed")
    wait_for(lambda: not _removed_but_mapped(recorder), "the recorder unmaps what was removed")
    assert _segments(run) > 0  # the working set itself stays, in use
    stopped = flow("stop", "trim", home=daemon, timeout=BOUND_S * 4)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
