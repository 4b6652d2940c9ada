"""`flow run` of a sender that exits right after a burst: a receiver that is far behind
gets every message, also one still reading long after the daemon's end-of-stream backstop
(`EOS_BACKSTOP_S`, daemon/run/supervisor.py), and a receiver that has ended for good does not
hold the sender's exit up."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import flow_run_ok, write_dataflow

from node_sdk.flush import WORD_WAIT_S

GONE_CLOSE_S = 1.5  # a close that waited for a gone receiver took 2 s (the old linger)

SENDER = """
import json, os, time
from node_sdk import Node

node = Node()
node.send_output("out", (0).to_bytes(4, "little"))
while not os.path.exists(os.environ["MARK"]):  # the receiver is frozen, or gone
    time.sleep(0.01)
gone = open(os.environ["MARK"]).read()  # the pid of a receiver that has ended
for _ in range(1000 if gone else 0):  # bounded: 10 s
    try:
        os.kill(int(gone), 0)
    except ProcessLookupError:
        break
    time.sleep(0.01)
time.sleep(0.3)
for i in range(1, int(os.environ["N"])):
    node.send_output("out", i.to_bytes(4, "little"))
started = time.monotonic()
node.close()
with open(os.environ["OUT"], "w") as out:
    json.dump({"close_s": time.monotonic() - started}, out)
"""

RECEIVER = """
import json, os, signal, subprocess, time
from node_sdk import Node

seqs, kinds = [], []
with Node() as node:
    for event in node:
        kinds.append(str(event.type))
        if event.type != "INPUT":
            continue
        seqs.append(event.seq)
        if len(seqs) == 1 and os.environ["HOW"] == "frozen":
            # a machine too loaded to run this process for longer than the old linger
            subprocess.Popen(["sh", "-c", f"sleep 3; kill -CONT {os.getpid()}"])
            open(os.environ["MARK"], "w").close()
            os.kill(os.getpid(), signal.SIGSTOP)
        elif os.environ["HOW"] == "slow":
            if len(seqs) == 1:
                open(os.environ["MARK"], "w").close()
            time.sleep(0.0004)  # user code: seconds behind a sender that has long exited
        elif os.environ["HOW"] == "gone":
            break
with open(os.environ["OUT"], "w") as out:
    json.dump({"seqs": seqs, "last": kinds[-2:]}, out)
if os.environ["HOW"] == "gone":
    with open(os.environ["MARK"], "w") as mark:  # its sockets are closed: the node has ended
        mark.write(str(os.getpid()))
"""

YAML = """
nodes:
  - id: sender
    path: sender.py
    outputs: [out]
    env: {{N: '{n}', MARK: '{mark}', OUT: '{sent}'}}
  - id: receiver
    path: receiver.py
    inputs:
      in: {{source: sender/out, queue_size: {queue}{policy}}}
    env: {{HOW: '{how}', MARK: '{mark}', OUT: '{got}'}}
"""


def _run(home: Path, tmp_path: Path, how: str, n: int, policy: str = "") -> tuple[dict, dict]:  # type: ignore[type-arg]
    sent, got, mark = tmp_path / "sent.json", tmp_path / "got.json", tmp_path / "mark"
    yaml = YAML.format(n=n, mark=mark, sent=sent, got=got, how=how, queue=n + 10,
                       policy=f", queue_policy: {policy}" if policy else "")  # fmt: skip
    yml = write_dataflow(tmp_path, yaml, {"sender.py": SENDER, "receiver.py": RECEIVER})
    flow_run_ok(home, yml)
    return json.loads(sent.read_text()), json.loads(got.read_text())


def test_a_burst_then_exit_reaches_a_frozen_receiver(flow_home: Path, tmp_path: Path) -> None:
    n = 20_000
    _, got = _run(flow_home, tmp_path, "frozen", n)
    assert got["seqs"] == list(range(1, n + 1))
    assert got["last"] == ["INPUT_CLOSED", "STOP"]


def test_a_burst_then_exit_reaches_a_frozen_backpressure_receiver(
    flow_home: Path, tmp_path: Path
) -> None:
    n = 20_000
    _, got = _run(flow_home, tmp_path, "frozen", n, policy="backpressure")
    assert got["seqs"] == list(range(1, n + 1))


def test_a_receiver_reading_past_the_daemons_backstop_gets_everything(
    flow_home: Path, tmp_path: Path
) -> None:
    # about 10,000 x 0.4 ms to read: the daemon's backstop (2 s after the sender's exit)
    # comes while thousands are still in the receiver's socket; they are read, then closed
    n = 10_000
    started = time.monotonic()
    _, got = _run(flow_home, tmp_path, "slow", n)
    print(f"read for {time.monotonic() - started:.1f} s")
    assert got["seqs"] == list(range(1, n + 1))
    assert got["last"] == ["INPUT_CLOSED", "STOP"]


def test_a_sender_whose_receiver_ended_closes_at_once(flow_home: Path, tmp_path: Path) -> None:
    # the sender ends once the receiver's process is gone: the daemon has said the receiver
    # ended for good by then (receiver_down), so its close does not wait the WORD_WAIT_S it
    # gives a receiver it has no word of (node_sdk/flush.py)
    sent, got = _run(flow_home, tmp_path, "gone", 40)
    assert got["seqs"] == [1]
    print(f"close took {sent['close_s']:.3f} s")
    assert sent["close_s"] < min(GONE_CLOSE_S, WORD_WAIT_S)
