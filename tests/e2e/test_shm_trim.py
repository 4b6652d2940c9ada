"""A sender's pool grows past its working set while a receiver stalls, and once the
receiver has caught up that excess is removed (node_sdk/shm.py, TRIM_IDLE_S) and every
reader unmaps it (node_sdk/leases.py, `ShmReader.sweep`): the receiver, the run's recorder
and `flow topic echo`. A burst's segments are not kept until the node ends, by the sender
nor by its readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import BOUND_S, flow, flow_env, run_segments, wait_for, write_dataflow

from node_sdk import shm

SIZE = 200_000  # shared memory (a 256 KiB class, whose working set is 8 segments)
BURST = 20

# one payload a tick, and a burst of BURST once the file GO is there; the run id in RUN
SENDER = """
import json, os
from node_sdk import Node

with open(os.environ["RUN"], "w") as out:
    out.write(json.loads(os.environ["FLOW_NODE_CONFIG"])["run"])
size, burst, sent, burst_sent = int(os.environ["SIZE"]), int(os.environ["BURST"]), 0, False
with Node() as node:
    for event in node:
        if event["type"] == "INPUT":
            go = not burst_sent and os.path.exists(os.environ["GO"])
            burst_sent = burst_sent or go
            for _ in range(burst if go else 1):
                sent += 1
                node.send_output("out", sent.to_bytes(4, "big") * (size // 4))
"""

# stalls 1 s at its first message once GO is there, holding what comes meanwhile; its pid
# in PID
RECEIVER = """
import os, time
from node_sdk import Node

with open(os.environ["PID"] + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.replace(os.environ["PID"] + ".tmp", os.environ["PID"])
stalled = False
for event in Node():
    if event["type"] == "INPUT" and not stalled and os.path.exists(os.environ["GO"]):
        stalled = True
        time.sleep(1.0)
"""

YAML = """
nodes:
  - id: s
    path: sender.py
    inputs: {{t: flow/timer/millis/50}}
    outputs: [out]
    env: {{RUN: '{run}', SIZE: '{size}', BURST: '{burst}', GO: '{go}'}}
  - id: r
    path: receiver.py
    inputs: {{x: {{source: s/out, queue_size: 100}}}}
    env: {{PID: '{pid}', GO: '{go}'}}
"""


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
    go, echoed = tmp_path / "go", tmp_path / "echo.out"
    yml = write_dataflow(
        tmp_path, YAML.format(run=run_file, pid=pid_file, size=SIZE, burst=BURST, go=go),
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
    with echoed.open("w") as out:
        echo = subprocess.Popen([sys.executable, "-m", "cli", "topic", "echo", "trim", "s/out"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=flow_env(daemon))  # fmt: skip
    try:
        wait_for(lambda: echoed.stat().st_size > 0, "flow topic echo sees the stream")
        go.touch()  # the burst and the receiver's stall, every reader there
        _trimmed(run, [receiver, recorder, echo.pid])
        assert echo.poll() is None, echoed.read_text()  # it watched all along
    finally:
        echo.terminate()  # as `kill` ends it: out through its exit (the fixture looks for
        ended = echo.wait(timeout=BOUND_S)  # a socket file it would leave behind)
    assert ended == 128 + signal.SIGTERM, echoed.read_text()
    stopped = flow("stop", "trim", home=daemon, timeout=BOUND_S * 4)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def _trimmed(run: str, readers: list[int]) -> None:
    """The pool grows past its working set, comes back to it, and no reader in `readers`
    still maps what was removed."""
    working_set = shm.working_set(256 * 1024)
    most = [0]

    def grew() -> bool:
        most[0] = max(most[0], len(run_segments(run)))
        return most[0] > working_set

    wait_for(grew, "the pool grows past its working set while the receiver stalls")
    wait_for(lambda: len(run_segments(run)) <= working_set, "the excess is removed once idle")
    for pid in readers:
        wait_for(lambda pid=pid: not _removed_but_mapped(pid),  # type: ignore[misc]
                 f"reader {pid} unmaps what was removed")  # fmt: skip
    assert run_segments(run)  # the working set itself stays, in use
